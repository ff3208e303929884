"""Synthesizers compared on one split, and the ε sweep: the rows, the writers, the flows and the command.

The heart-disease table (920 rows, no entity key), tiny networks, 2 epochs, small evaluation samples.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import pandas as pd
import pytest
from distributed import LocalCluster
from plotly.offline import get_plotlyjs

from synth import models
from synth.compare import (
    COLUMNS,
    Variant,
    check_models,
    epsilon_variants,
    model_variants,
    run_variant,
    write_comparison,
)
from synth.config import load_config
from synth.errors import ConfigError
from synth.models.copula import GaussianCopulaSynthesizer
from synth.preprocess import preprocess
from synth.report.compare import BARS, CURVES
from tests.conftest import SMALL_EVALUATION

CONFIG = """seed: 0
model: {epochs: 2, hidden_dims: [32], latent_dim: 4, batch_size: 64}
""" + SMALL_EVALUATION + "  target: sex\n"
SITES = ("cleveland", "hungary", "switzerland", "va long beach")  # the real table's category values


@pytest.fixture(scope="module")
def config_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "config.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def prepared(heart_csv, config_path, tmp_path_factory):
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        return preprocess(str(heart_csv), load_config(config_path), tmp_path_factory.mktemp("work"),
                          dask_address=cluster.scheduler_address, log=lambda _: None)


@pytest.fixture(scope="module")
def compared(prepared, config_path, tmp_path_factory):
    """Rows of the independent baseline and the VAE, and the folder they wrote."""
    out = tmp_path_factory.mktemp("compare")
    config = load_config(config_path)
    rows = [run_variant(v, prepared, config, out) for v in model_variants(["independent", "auto"], prepared.schema)]
    return rows, out


def test_a_variant_row_holds_every_column_and_consistent_numbers(compared, prepared):
    rows, out = compared
    assert [r["label"] for r in rows] == ["independent", "vae"]  # auto: no entity key, so the row VAE
    for row in rows:
        assert list(row) == COLUMNS
        assert row["error"] is None and row["epsilon"] is None and row["epsilon_spent"] is None
        assert row["rows"] == prepared.train_rows  # as many synthetic rows as the training split
        assert 0 < row["column_shapes"] <= 1 and 0 < row["column_pair_trends"] <= 1
        # SDMetrics' quality score is the mean of its two properties.
        assert row["quality_score"] == pytest.approx((row["column_shapes"] + row["column_pair_trends"]) / 2)
        assert 0.5 <= row["mia_auc"] <= 1
        assert row["dcr_ratio"] == pytest.approx(row["dcr_median"] / row["dcr_holdout_median"])
        assert row["tstr"] is not None and row["trtr"] is not None  # the utility target `sex` was modelled
        assert row["gate"] == "pass" or row["gate"].startswith("fail: ")
        assert row["fit_seconds"] > 0 and row["sample_seconds"] > 0
        folder = out / "variants" / row["label"]
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["quality_score"] == pytest.approx(row["quality_score"])
        assert metrics["exact_collisions"] == row["exact_copies"]
        assert (folder / "model" / "model.json").is_file()
        assert not (folder / "synthetic").exists()  # a study, not a release: the rows are deleted once judged


def test_the_same_variant_twice_gives_the_same_numbers(compared, prepared, config_path, tmp_path):
    first = compared[0][0]
    again = run_variant(Variant(label="independent", model="independent"), prepared, load_config(config_path), tmp_path)
    timing = {"fit_seconds", "sample_seconds"}
    assert {k: v for k, v in again.items() if k not in timing} == {k: v for k, v in first.items() if k not in timing}


def test_a_baseline_asked_for_dp_is_a_row_with_its_error(prepared, config_path, tmp_path):
    variant = Variant(label="copula at ε=1", model="gaussian-copula", overrides={"privacy": {"epsilon": 1.0}})
    row = run_variant(variant, prepared, load_config(config_path), tmp_path)
    assert row["error"] == "model gaussian-copula has no differential privacy; use vae or patient-vae"
    assert row["epsilon"] == 1.0 and row["quality_score"] is None
    assert not (tmp_path / "variants" / variant.slug / "synthetic").exists()


def test_the_default_models_follow_the_registry(prepared, monkeypatch):
    others = [n for n in models.REGISTRY if n not in ("vae", "patient-vae")]
    assert [v.model for v in model_variants(None, prepared.schema)] == ["vae", *others]

    class Newcomer(GaussianCopulaSynthesizer):
        name = "newcomer"

    monkeypatch.setitem(models.REGISTRY, "newcomer", Newcomer)
    assert [v.label for v in model_variants(None, prepared.schema)][-1] == "newcomer"
    assert [v.label for v in model_variants(["pca", "auto", "pca"], prepared.schema)] == ["pca", "vae"]


def test_an_unknown_model_names_the_choices():
    with pytest.raises(ConfigError, match=r"unknown model 'gann'; choose from auto, vae, patient-vae, independent"):
        check_models(["vae", "gann"])


def test_sweep_variants_run_from_the_smallest_epsilon_to_infinity():
    variants = epsilon_variants([10, None, 0.5, 1, 10])
    assert [v.label for v in variants] == ["ε=0.5", "ε=1", "ε=10", "ε=∞"]
    assert [v.slug for v in variants] == ["epsilon-0.5", "epsilon-1", "epsilon-10", "epsilon-inf"]
    base = load_config(None).with_overrides(privacy={"epsilon": 3.0})
    assert [v.config(base).privacy.epsilon for v in variants] == [0.5, 1.0, 10.0, None]  # ∞ turns DP off


def test_the_sweep_spends_at_most_each_budget(prepared, config_path, tmp_path):
    config = load_config(config_path)
    rows = [run_variant(v, prepared, config, tmp_path) for v in epsilon_variants([1.0, None])]
    assert [(r["label"], r["epsilon"]) for r in rows] == [("ε=1", 1.0), ("ε=∞", None)]
    assert rows[0]["error"] is None, rows[0]["error"]
    privacy = json.loads((tmp_path / "variants" / "epsilon-1" / "model" / "privacy.json").read_text())
    assert privacy["enabled"] and privacy["epsilon_target"] == 1.0
    assert 0 < privacy["epsilon_spent"] <= 1.0 + 1e-9
    assert rows[0]["epsilon_spent"] == pytest.approx(privacy["epsilon_spent"])
    off = json.loads((tmp_path / "variants" / "epsilon-inf" / "model" / "privacy.json").read_text())
    assert off["enabled"] is False and rows[1]["epsilon_spent"] is None

    written = write_comparison(rows, tmp_path, "sweep", sweep=True)
    html = written["html"].read_text()
    assert len(re.findall(r'class="plot curve"', html)) == len(CURVES)
    # The curves' x axis is the sweep's order, ∞ last.
    assert re.search(r'"x":\["1","∞"\]', html) or re.search(r'"x":\["1","\\u221e"\]', html)


def test_the_table_and_page_hold_every_variant_and_no_real_value(compared, tmp_path):
    rows, _ = compared
    error_row = {"label": "smote", "model": "smote", "error": "model smote has no differential privacy"}
    written = write_comparison([*rows, error_row], tmp_path)
    assert set(written) == {"csv", "md", "html"}

    table = pd.read_csv(written["csv"])
    assert list(table.columns) == COLUMNS and list(table["label"]) == ["independent", "vae", "smote"]
    assert table["quality_score"].iloc[:2].tolist() == pytest.approx([r["quality_score"] for r in rows])

    lines = written["md"].read_text().splitlines()
    assert lines[0].startswith("| synthesizer | ε | quality |") and lines[5] == ""
    assert lines[2].startswith(f"| independent | ∞ | {rows[0]['quality_score']:.3f} |")
    assert "error: model smote has no differential privacy" in lines[4]
    # Below the table, each model's statement of what it keeps of the real rows; SMOTE's plainly.
    assert [line.split(":")[0] for line in lines[6:]] == ["* independent", "* smote"]
    assert "SMOTE interpolates real records" in lines[7]

    html = written["html"].read_text()
    assert len(re.findall(r'class="plot bar"', html)) == len(BARS)  # one plot per metric
    for key, _, _ in BARS:
        assert f'id="bar-{key}"' in html
    assert 'class="plot curve"' not in html  # curves only for a sweep
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="https?:', html)  # self-contained
    assert html.count('<script type="text/javascript">') == 1  # plotly.js once, inline
    page = html.replace(get_plotlyjs(), "")  # plotly.js itself names countries ("Switzerland")
    assert not any(site in page.lower() for site in SITES)
    assert rows[1]["label"] in page and f"{rows[1]['quality_score']:.3f}" in page
    assert "PRIVACY RISK: SMOTE interpolates real records" in page


@pytest.mark.e2e
def test_the_compare_flow_preprocesses_once_and_maps_one_task_per_model(heart_csv, config_path, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.compare import compare
    from flows.parameters import CompareParameters

    params = CompareParameters(source=str(heart_csv), output=str(tmp_path / "out"), config_path=str(config_path),
                               models=["independent", "pca"], rows=300, work_dir=str(tmp_path / "work"))
    state = compare(params, return_state=True)
    assert state.is_completed(), state.message
    rows = state.result()
    assert [(r["label"], r["rows"], r["error"]) for r in rows] == [("independent", 300, None), ("pca", 300, None)]
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    names = sorted(run.name.rsplit("-", 1)[0] if not run.name.startswith("run-variant") else run.name for run in runs)
    assert names.count("preprocess-extract") == 1
    assert [n for n in names if n.startswith("run-variant")] == ["run-variant-independent", "run-variant-pca"]
    first, second = [(r.start_time, r.end_time) for r in runs if r.name.startswith("run-variant")]
    assert first[0] < second[1] and second[0] < first[1]  # mapped: the variants ran side by side
    out = tmp_path / "out"
    assert {"compare.csv", "compare.md", "compare.html", "variants"} <= {p.name for p in out.iterdir()}
    assert not list((tmp_path / "work").iterdir())  # the real-data intermediates are deleted


@pytest.mark.e2e
def test_synth_sweep_prints_the_table_with_infinity_last(heart_csv, config_path, tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    out = tmp_path / "sweep"
    done = CliRunner().invoke(app, ["sweep", "--source", str(heart_csv), "--output", str(out), "--config",
                                    str(config_path), "--epsilons", "inf,3", "--rows", "300"])
    assert done.exit_code == 0, done.output
    table = [line for line in done.stdout.splitlines() if line.startswith("| ε=")]
    assert [line.split(" | ")[0] for line in table] == ["| ε=3", "| ε=∞"]
    spent = json.loads((out / "variants" / "epsilon-3" / "model" / "privacy.json").read_text())["epsilon_spent"]
    assert 0 < spent <= 3.0 + 1e-9
    assert pd.read_csv(out / "compare.csv")["epsilon"].tolist()[0] == 3.0
    assert math.isnan(pd.read_csv(out / "compare.csv")["epsilon"].tolist()[1])


def test_synth_compare_with_an_unknown_model_is_one_line_and_exit_1(heart_csv, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "compare", "--source", str(heart_csv), "--output", str(tmp_path / "o"),
         "--models", "vae,gann"], capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "unknown model 'gann'; choose from auto, vae, patient-vae" in line and "Traceback" not in done.stderr
    assert not (tmp_path / "o").exists()
