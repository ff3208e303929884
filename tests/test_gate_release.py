"""Tests for the gated release (tasks.evaluate.release_synthetic) and `synth evaluate`'s exit status."""

from __future__ import annotations

import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prefect.logging import disable_run_logger
from typer.testing import CliRunner

from flows.cli import GATE_FAILED, app
from synth.sampling import SampleResult
from tasks.evaluate import release_synthetic
from tests.conftest import PIMA_CSV

PIMA = str(PIMA_CSV)
PASS = {"gate": {"verdict": "pass", "reasons": [], "checks": []}}
FAIL = {"gate": {"verdict": "fail", "reasons": ["exact copies of real rows 3 exceeds the limit 0 by 3"], "checks": []}}


def _staged(tmp_path) -> SampleResult:
    staging = tmp_path / "staging"
    staging.mkdir()
    pq.write_table(pa.table({"x": [1, 2, 3]}), staging / "part-00000.parquet")
    return SampleResult(folder=str(staging), rows=3, chunks=1)


def test_passing_gate_releases_the_staged_parts(tmp_path):
    sampled = _staged(tmp_path)
    with disable_run_logger():
        released = release_synthetic.fn(sampled, str(tmp_path / "synthetic"), PASS)
    assert released == str(tmp_path / "synthetic")
    assert (tmp_path / "synthetic" / "part-00000.parquet").is_file()
    assert not (tmp_path / "staging").exists()


def test_a_gate_that_is_not_enforced_releases_but_keeps_its_verdict(tmp_path):
    sampled = _staged(tmp_path)
    not_enforced = {"gate": {**FAIL["gate"], "enforced": False}}
    with disable_run_logger():
        released = release_synthetic.fn(sampled, str(tmp_path / "synthetic"), not_enforced)
    assert released == str(tmp_path / "synthetic")
    assert (tmp_path / "synthetic" / "part-00000.parquet").is_file()
    assert not_enforced["gate"]["verdict"] == "fail"


def test_failing_gate_keeps_data_out_of_the_release_folder(tmp_path):
    old_release = tmp_path / "synthetic"
    old_release.mkdir()
    (old_release / "part-00000.parquet").write_bytes(b"an earlier run's parts")
    sampled = _staged(tmp_path)
    with disable_run_logger():
        released = release_synthetic.fn(sampled, str(old_release), FAIL)
    assert released is None
    assert not (tmp_path / "staging").exists()  # failed rows are deleted, not left lying around
    assert not old_release.exists()  # nothing in synthetic/ reads as approved beside a failed report


@pytest.mark.slow
def test_synth_evaluate_exits_3_and_says_why_when_the_gate_fails(tmp_path):
    # The real table judged against itself: every row an exact copy.
    result = CliRunner().invoke(
        app, ["evaluate", "--real", PIMA, "--synthetic", PIMA, "--output", str(tmp_path), "--target", "Outcome"]
    )
    assert result.exit_code == GATE_FAILED, result.output
    said = " ".join(result.output.split())  # the console wraps long lines
    assert "release gate FAILED" in said
    assert re.search(r"\d+ of 768 synthetic rows \(\d+(\.\d+)?%\) equal a holdout row, against the training rows", said)
    # No --holdout: the privacy checks cannot pass, whatever the data.
    assert re.search(r"holdout: unknown: no unseen real rows: no holdout was given", said)
    assert re.search(r"membership_inference: unknown: no unseen real rows \(measured [\d.]+", said)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["gate"]["verdict"] == "fail" and "figures" not in metrics
    assert metrics["tstr"] is not None and "seeded 20% split" in metrics["holdout_source"]
    assert (tmp_path / "report.html").stat().st_size > 1_000_000  # plotly.js inline


def test_unknown_target_is_one_clear_line_and_exit_1(tmp_path):
    result = CliRunner().invoke(
        app, ["evaluate", "--real", PIMA, "--synthetic", tmp_path / "missing.csv", "--output", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "missing.csv" in result.output


def test_synth_evaluate_passes_other_real_people_given_a_holdout_and_the_entity_key(tmp_path):
    from tests.test_gate_attacks import _panel

    paths = _panel(tmp_path)
    result = CliRunner().invoke(
        app, ["evaluate", "--real", paths["real"], "--synthetic", paths["synthetic"], "--holdout", paths["holdout"],
              "--entity-key", "person", "--output", str(tmp_path / "out")],
    )
    assert result.exit_code == 0, result.output
    assert "gate PASS" in " ".join(result.output.split())
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["entity_key"] == "person" and metrics["gate"]["summary"] == "PASS"
    assert metrics["holdout"]["given"] is True and metrics["holdout"]["shared_patients"] == 0


def test_entity_key_parameter_reaches_the_config():
    from flows.parameters import EvaluateParameters

    params = EvaluateParameters(real="r.csv", synthetic="s.csv", output="out", entity_key="person", holdout=" ")
    assert params.overrides()["entity_key"] == "person" and params.holdout is None
    assert "entity_key" not in EvaluateParameters(real="r", synthetic="s", output="o").overrides()
