"""The generate flow with real components: Prefect's API, a Dask cluster, GX, the VAE.

A run whose sampling fails, then a rerun that repeats only the failed work (task-run
states read back from Prefect's API); a bad extract stopped by the gate before training;
a second run on a busy output refused. Tiny data (2,000 diabetes rows), one epoch.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId

from flows.generate import generate
from flows.parameters import GenerateParameters
from synth.models.base import Synthesizer
from synth.runs import LOCK, OutputLock
from tasks.sample import sample_synthetic
from tests.conftest import SMALL_EVALUATION

pytestmark = pytest.mark.e2e

CONFIG = """
seed: 0
entity_key: patient_nbr
columns: {encounter_id: identifier}
model: {epochs: 1, max_training_rows: 1000}
preprocess: {partition_rows: 1000, workers: 2}
sampling: {chunk_rows: 1000}
""" + SMALL_EVALUATION


@pytest.fixture(scope="module")
def extract(diabetes_csv, tmp_path_factory) -> Path:
    """2,000 diabetes rows as a partitioned Parquet extract (two monthly files)."""
    folder = tmp_path_factory.mktemp("extract")
    frame = pl.read_csv(diabetes_csv, null_values=["?"], infer_schema_length=None).sample(2_000, seed=2)
    pq.write_table(frame.slice(0, 1_000).to_arrow(), folder / "2024-01.parquet")
    pq.write_table(frame.slice(1_000, 1_000).to_arrow(), folder / "2024-02.parquet")
    (folder.parent / "config.yaml").write_text(CONFIG)
    return folder


def _params(extract: Path, tmp_path: Path, **extra) -> GenerateParameters:
    return GenerateParameters(
        source=str(extract),
        output=str(tmp_path / "out"),
        config_path=str(extract.parent / "config.yaml"),
        work_dir=str(tmp_path / "work"),
        **extra,
    )


def _task_states(flow_run_id) -> dict[str, str]:
    """Task name -> state name of a flow run's task runs, read back from Prefect's API."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {run.name.rsplit("-", 1)[0]: run.state.name for run in runs}


def test_failed_sampling_then_a_rerun_repeats_only_the_failed_work(extract, tmp_path, monkeypatch):
    real_sample = Synthesizer.sample

    def fail_on_second_chunk(self, n, seed=0, start=0, avoid=None):
        if start >= 1_000:
            raise OSError("injected: the disk filled up while writing chunk 1")
        return real_sample(self, n, seed, start, avoid)

    monkeypatch.setattr(Synthesizer, "sample", fail_on_second_chunk)
    monkeypatch.setattr(sample_synthetic, "retries", 0)
    params = _params(extract, tmp_path)
    first = generate(params, return_state=True)
    assert first.is_failed()
    states = _task_states(first.state_details.flow_run_id)
    assert states["preprocess-extract"] == "Completed"
    assert states["train-model"] == "Completed"
    assert states["sample-synthetic"] == "Failed"
    assert "evaluate-synthetic" not in states
    out = tmp_path / "out"
    chunk0 = out / "staging" / "part-00000.parquet"
    written_before = chunk0.stat().st_mtime_ns
    model_before = {p.name: p.stat().st_mtime_ns for p in (out / "model").iterdir()}
    assert not (out / LOCK).exists()  # released on failure
    work = Path(params.work_dir)
    assert list(work.glob("*/clean/train/part-*.parquet"))  # a failed run keeps its intermediates to resume

    monkeypatch.setattr(Synthesizer, "sample", real_sample)
    second = generate(params, return_state=True)
    assert second.is_completed(), second.message
    states = _task_states(second.state_details.flow_run_id)
    assert states["preprocess-extract"] == "Cached"  # same data, config and code
    assert states["train-model"] == "Completed"  # ran, found the finished model, spent nothing
    assert {p.name: p.stat().st_mtime_ns for p in (out / "model").iterdir()} == model_before
    assert states["sample-synthetic"] == "Completed"
    assert (out / "synthetic" / "part-00000.parquet").stat().st_mtime_ns == written_before  # chunk 0 kept
    assert pq.ParquetFile(out / "synthetic" / "part-00001.parquet").metadata.num_rows == 1_000

    # The output folder holds synthetic data, model, metrics, report and manifest only.
    assert {p.name for p in out.iterdir()} <= {"synthetic", "model", "metrics.json", "report.html", "manifest.json"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run"]["id"] == str(second.state_details.flow_run_id)
    assert manifest["rows"]["real"] == 2_000 and manifest["rows"]["synthetic"] == 2_000
    assert manifest["gate"]["extract_validation"]["success"] is True
    release = manifest["gate"]["release"]  # the verdict as metrics.json has it, every check and its numbers
    assert release["summary"] == "PASS" and release["reason"] is None and release["relaxed"] == []
    assert [c["name"] for c in release["checks"]][:2] == ["holdout", "exact_copies"]
    assert manifest["privacy"]["enabled"] is False
    assert [c["name"] for c in manifest["schema"]["columns"]][:2] == ["encounter_id", "patient_nbr"]
    for entry in manifest["files"]:
        assert hashlib.sha256((out / entry["path"]).read_bytes()).hexdigest() == entry["sha256"]
    assert not list(work.iterdir())  # a completed run deletes its real-data intermediates


def test_gate_stops_a_bad_extract_before_training(extract, tmp_path):
    suite = tmp_path / "suite.json"
    suite.write_text(
        json.dumps(
            {
                "expectations": [
                    {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 100_000}},
                    {
                        "type": "expect_column_values_to_be_in_set",
                        "kwargs": {"column": "race", "value_set": ["Caucasian"]},
                    },
                ]
            }
        )
    )
    state = generate(_params(extract, tmp_path, expectation_suite=str(suite)), return_state=True)
    assert state.is_failed()
    assert "failed validation" in state.message
    states = _task_states(state.state_details.flow_run_id)
    assert states["check-extract"] == "Failed"
    assert "train-model" not in states
    assert not (tmp_path / "out" / "model").exists()

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["extract-validation"])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])),
        )
    report = artifacts[0].data
    assert "| expect_table_row_count_to_be_between | (table) |" in report
    assert "| expect_column_values_to_be_in_set | race |" in report
    assert "AfricanAmerican" not in report  # counts only


def test_a_second_run_on_a_busy_output_is_refused(extract, tmp_path):
    with OutputLock(tmp_path / "out", owner="flow run already-running"):
        state = generate(_params(extract, tmp_path), return_state=True)
    assert state.is_failed()
    assert "being written by another run (flow run already-running" in state.message
    assert not (tmp_path / "out" / "model").exists()


def test_sql_url_comes_from_a_secret_block_at_run_time(monkeypatch):
    from prefect.blocks.system import Secret

    from synth.config import PipelineConfig
    from tasks.preprocess import use_sql_secret

    monkeypatch.delenv("SYNTH_SQL_URL_TEST", raising=False)
    Secret(value="postgresql+psycopg://reader@warehouse/extracts").save("synth-test-sql-url", overwrite=True)
    config = PipelineConfig.model_validate({"source": {"sql_url_env": "SYNTH_SQL_URL_TEST"}})
    use_sql_secret.fn("synth-test-sql-url", config)
    assert os.environ["SYNTH_SQL_URL_TEST"] == "postgresql+psycopg://reader@warehouse/extracts"
    use_sql_secret.fn(None, config)  # no block named: the environment is left alone
