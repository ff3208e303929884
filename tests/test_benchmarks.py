"""The benchmark scripts at tiny sizes (their ``--smoke`` modes), so they never rot.

Each script runs in a subprocess exactly as ``make bench`` runs it, and must print its
table and write its JSON. SDV is not needed: smoke modes skip its baselines with a note.
The full benchmarks are not tests (they take an hour on 2 cores; see benchmarks/README.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
TABLE_HEADER = "peak RSS"  # a column of every table (benchmarks/common.py)


def _run(script: str, *args: str, timeout: int = 600) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        cwd=BENCH.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _result(out: Path, stage: str) -> dict:
    payload = json.loads((out / f"{stage}.json").read_text())
    assert payload["rows"], f"{stage}.json has no rows"
    for row in payload["rows"]:
        assert row["seconds"] > 0 and row["rows"] > 0 and row["peak_rss_mb"] > 0
    assert payload["machine"]["cores"] >= 1 and payload["machine"]["versions"]["torch"]
    return payload


def test_distance_smoke_agrees_with_gower_package(tmp_path):
    stdout = _run("distance.py", "--smoke", "--out", str(tmp_path))
    assert TABLE_HEADER in stdout and "Machine:" in stdout
    payload = _result(tmp_path, "distance")
    ours = next(r for r in payload["rows"] if r["case"].startswith("synth"))
    assert ours["max_abs_difference"] < 1e-6
    assert {t["name"].split(" (")[0] for t in payload["targets"]} >= {"same values"}


@pytest.mark.slow
def test_train_smoke_prints_table_and_skips_sdv(tmp_path):
    stdout = _run("train.py", "--smoke", "--out", str(tmp_path))
    assert TABLE_HEADER in stdout and "SDV baselines skipped (smoke mode)" in stdout
    payload = _result(tmp_path, "train")
    assert [r["case"] for r in payload["rows"]] == [
        "synth vae (cpu)", "synth vae, TVAE's widths (cpu)", "synth patient-vae (cpu)"
    ]
    assert all(0 < r["quality"] <= 1 for r in payload["rows"])


@pytest.mark.slow
def test_sample_smoke_writes_parts_and_checks_memory(tmp_path):
    stdout = _run("sample.py", "--smoke", "--out", str(tmp_path))
    assert TABLE_HEADER in stdout and "GaussianCopula baseline skipped (smoke mode)" in stdout
    payload = _result(tmp_path, "sample")
    cases = [r["case"] for r in payload["rows"]]
    assert cases == [
        "pyarrow write floor (baseline) 2,000",
        "synth sample_to_parquet 2,000",
        "pyarrow write floor (baseline) 4,000",
        "synth sample_to_parquet 4,000",
        "synth sample_to_parquet, 2 worker processes 4,000",  # smoke: the parallel cases at the largest size
        "synth sample_to_parquet on Dask, 2 workers 4,000",
    ]
    assert all(r["bytes"] > 0 for r in payload["rows"])
    targets = {t["name"]: t for t in payload["targets"]}
    assert any(name.startswith("peak RSS") for name in targets)
    assert targets["identical part bytes whoever writes them (4,000 rows)"]["met"]  # 1 process, 2 processes, Dask


def test_gpu_bench_asked_for_cuda_without_one_fails_loudly(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the refusal is for machines without it")
    done = subprocess.run(
        [sys.executable, str(BENCH / "gpu.py"), "--device", "cuda", "--out", str(tmp_path)],
        cwd=BENCH.parent, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "CUDA was asked for" in done.stderr and "sees no CUDA device; nothing was measured" in done.stderr
    assert not list(tmp_path.iterdir())  # no CPU numbers passed off as GPU ones


def test_gpu_bench_cpu_smoke(tmp_path):
    stdout = _run("gpu.py", "--smoke", "--device", "cpu", "--out", str(tmp_path))
    assert TABLE_HEADER in stdout and "CPU cases only" in stdout
    payload = _result(tmp_path, "gpu")
    assert [r["case"] for r in payload["rows"]] == ["train vae (cpu)", "sample network draws (cpu)"]


@pytest.mark.slow
def test_preprocess_smoke(tmp_path):
    stdout = _run(
        "preprocess.py", "--rows", "20000", "--workers", "1", "2", "--file-rows", "10000",
        "--partition-rows", "10000", "--smoke", "--out", str(tmp_path),
    )
    assert "rows/s" in stdout
    payload = json.loads((tmp_path / "preprocess.json").read_text())
    assert {r["workers"] for r in payload["results"]} == {None, 1, 2}
    assert all(r["gate_passed"] for r in payload["results"] if r["kind"] == "preprocess")


@pytest.mark.slow
def test_evaluate_smoke(tmp_path):
    stdout = _run("evaluate_scale.py", "--synthetic-rows", "5000", "--real-rows", "6000", "--smoke", "--out", str(tmp_path))
    assert "evaluate:" in stdout
    payload = _result(tmp_path, "evaluate")
    assert payload["rows"][0]["timings"]


def test_summary_reads_every_stage(tmp_path):
    """run_all's summary over results in the common shape and in preprocess.py's own shape."""
    common = {"stage": "train", "machine": {}, "notes": [],
              "rows": [{"case": "synth vae (cpu)", "rows": 10, "seconds": 1.0, "rows_per_second": 10.0,
                        "peak_rss_mb": 100.0, "load_before": 0.5}],
              "targets": [{"name": "a target", "measured": "1x", "met": True, "bound": ""}]}
    (tmp_path / "train.json").write_text(json.dumps(common))
    preprocess = {"results": [
        {"kind": "polars", "workers": None, "rows": 100, "seconds": 1.0, "rows_per_second": 100.0, "peak_rss_mb": 50.0},
        {"kind": "preprocess", "workers": 1, "rows": 100, "seconds": 2.0, "rows_per_second": 50.0, "peak_rss_mb": 80.0},
        {"kind": "preprocess", "workers": 2, "rows": 100, "seconds": 1.0, "rows_per_second": 100.0, "peak_rss_mb": 90.0},
    ]}
    (tmp_path / "preprocess.json").write_text(json.dumps(preprocess))
    stdout = _run("run_all.py", "--summary", "--only", "preprocess", "train", "--out", str(tmp_path))
    assert "SUMMARY" in stdout and "synth vae (cpu)" in stdout
    assert "[MET   ] 2 Dask workers >= 1.6x the rows/s of 1 (100 rows): 2.00x" in stdout
    assert "[MET   ] a target: 1x" in stdout
