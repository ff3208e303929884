"""The `synth` command end to end: real extracts with a config or flags only, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

SYNTH = [sys.executable, "-m", "flows.cli"]


def synth(*args: str, tmp_path: Path, timeout: int = 900, level: str = "WARNING") -> subprocess.CompletedProcess:
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_LOGGING_LEVEL": level}
    return subprocess.run([*SYNTH, *args], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--source", "/nowhere/extract.csv", "--output", "{out}"], "source not found: /nowhere/extract.csv"),
        (["run", "--source", "{csv}", "--output", "{out}", "--config", "/nowhere/c.yaml"], "config file not found"),
        (["run", "--source", "{csv}", "--output", "{out}", "--config", "{bad_config}"], "columns.agee: no such column"),
        (["sample", "--model", "/nowhere/model", "--rows", "5", "--output", "{out}"], "model folder not found"),
        (["sample", "--model", "/nowhere/model", "--rows", "5", "--output", "{out}", "--workers", "0"], "workers"),
    ],
)
def test_bad_input_is_one_clear_line_and_a_non_zero_exit(tmp_path, heart_csv, args, message):
    bad_config = tmp_path / "c.yaml"
    bad_config.write_text("columns: {agee: numerical}\n")
    filled = [a.format(out=tmp_path / "out", csv=heart_csv, bad_config=bad_config) for a in args]
    done = synth(*filled, tmp_path=tmp_path)
    assert done.returncode == 1, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "synthetic").exists()


@pytest.mark.e2e
def test_run_on_diabetes_130_with_a_config_only(tmp_path, diabetes_csv):
    config = tmp_path / "diabetes.yaml"
    config.write_text("source: {na_values: ['?']}\nmodel: {epochs: 1}\nsampling: {rows: 3000}\n")
    out = tmp_path / "diabetes"
    done = synth("run", "--source", str(diabetes_csv), "--output", str(out), "--config", str(config), tmp_path=tmp_path)
    metrics = json.loads((out / "metrics.json").read_text())
    assert done.returncode in (0, 3), done.stderr  # 3: the release gate refused a 1-epoch model
    _check_outputs(out, metrics, rows=3000, released=done.returncode == 0)
    assert metrics["entities"]["real"] > 0  # patient_nbr was found and modelled as the patient


@pytest.mark.e2e
def test_run_on_appointments_with_flags_only(tmp_path, appointments_csv):
    out = tmp_path / "appointments"
    done = synth(
        "run", "--source", str(appointments_csv), "--output", str(out), "--epochs", "1", "--rows", "3000", "--seed", "4",
        tmp_path=tmp_path,
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert done.returncode in (0, 3), done.stderr
    _check_outputs(out, metrics, rows=3000, released=done.returncode == 0)


@pytest.mark.e2e
def test_a_csv_written_by_pandas_runs_first_time_and_the_console_shows_only_the_pipeline(tmp_path, heart_csv):
    """The most common CSV a user brings: ``DataFrame.to_csv`` / ``write.csv`` with the row index first."""
    import pandas as pd

    source = tmp_path / "heart.csv"
    pd.read_csv(heart_csv).to_csv(source)
    out = tmp_path / "heart"
    done = synth("run", "--source", str(source), "--output", str(out), "--epochs", "2", tmp_path=tmp_path, level="INFO")
    console = done.stdout + done.stderr
    assert done.returncode in (0, 3), console[-3000:]
    assert "column 0 (empty header) holds row numbers" in console
    assert "column_0" not in console and "unnamed" not in console
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["columns"] == 15  # site, age ... num: the index is not a column
    # The pipeline's own progress, not the Dask cluster's.
    assert "preprocess-extract" in console and "epoch 2/2" in console
    assert "distributed." not in console and "Scheduler at" not in console and "Nanny" not in console


def _check_outputs(out: Path, metrics: dict, rows: int, released: bool) -> None:
    for key in (
        "rows", "columns", "quality_score", "column_shapes", "column_pair_trends", "exact_collisions",
        "epsilon", "train_seconds", "sample_seconds",
    ):
        assert key in metrics, key
    assert metrics["rows"] == rows and metrics["epsilon"] is None
    assert 0 < metrics["quality_score"] <= 1
    assert (out / "report.html").is_file() and (out / "model" / "model.pt").exists() or (out / "model").is_dir()
    if released:
        assert ds.dataset(out / "synthetic").count_rows() == rows
    else:
        assert not (out / "synthetic").exists()


@pytest.mark.e2e
def test_demo_writes_synthetic_parquet_with_the_extracts_columns_and_types(tmp_path):
    from synth.demo.mimic import DEMO_DATA_DIR, build_episode_table

    out = tmp_path / "demo"
    done = synth("demo", "--output", str(out), "--epochs", "3", tmp_path=tmp_path)
    metrics = json.loads((out / "metrics.json").read_text())
    # The demo's gate is reported, not enforced (public data, 97 patients): it always releases.
    assert done.returncode == 0, done.stderr
    assert metrics["gate"]["enforced"] is False
    # Not enforcing needs a stated reason, and it travels with the verdict: metrics, manifest, report, console.
    assert metrics["gate"]["summary"].startswith("NOT ENFORCED: demo on the public MIMIC-III demo extract")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["gate"]["release"]["reason"] == metrics["gate"]["reason"] and "public" in metrics["gate"]["reason"]
    assert "demo on the public MIMIC-III demo extract" in (out / "report.html").read_text()
    extract = build_episode_table(DEMO_DATA_DIR)
    parts = sorted((out / "synthetic").glob("part-*.parquet"))
    assert parts and all(pq.read_schema(p) == extract.schema for p in parts)
    assert sum(pq.read_metadata(p).num_rows for p in parts) == extract.num_rows
    assert metrics["rows"] == extract.num_rows and metrics["static_consistency"] == 1.0
    if metrics["gate"]["verdict"] == "fail":
        assert "not enforced" in done.stderr and "not enforced" in (out / "report.html").read_text()
