"""Benchmark: parallel preprocessing of a large partitioned extract on 1 and 2 Dask workers.

    .venv/bin/python benchmarks/preprocess.py                  # 1M and 10M rows, 1 and 2 workers
    .venv/bin/python benchmarks/preprocess.py --rows 1000000 --workers 2

The extract is diabetes_130 (101,766 real encounters from ../shared/data) tiled until it
has the wanted rows, every tile with fresh patient and encounter ids (ids + tile x 10^9),
written as Parquet files of ``--file-rows`` rows under benchmarks/data/ (git-ignored).
It is not new information: the same patients' records repeated with new ids, so sizes
and value distributions are real while the row count grows.

Each measurement runs in a fresh subprocess; a sampler adds up the resident memory of
that process and all its children (the Dask scheduler's and workers' processes) every
0.1 s, so "peak RSS" is the whole process tree's; "CPU" is the tree's user + system
seconds, which shows whether the workers had the cores (on a shared machine other work
competes for them, so the load average before each run is printed too). The baseline is
Polars reading the same files into memory (``pl.read_parquet``). Printed per run: rows,
seconds, rows/s, peak RSS, ratio to the baseline's rows/s; everything goes to
benchmarks/results/preprocess.json as well.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import psutil

import common

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "benchmarks" / "data"
RESULTS = REPO / "benchmarks" / "results"
ID_STRIDE = 1_000_000_000
CONFIG = {
    "seed": 0,
    "entity_key": "patient_nbr",
    "columns": {"encounter_id": "identifier"},
}


def build_extract(rows: int, file_rows: int, smoke: bool) -> Path:
    """diabetes_130 (or its 10,000-row sample) tiled to ``rows`` rows with fresh ids, as Parquet files (built once)."""
    import polars as pl

    source = common.diabetes(smoke)
    folder = DATA / f"diabetes_{rows}{'_from_sample' if smoke else ''}"
    done = folder / "_SUCCESS"
    if done.is_file() and json.loads(done.read_text()) == {"rows": rows, "file_rows": file_rows}:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.parquet"):
        old.unlink()
    real = pl.read_csv(source, null_values=["?"], infer_schema_length=None)
    written, tile, pending = 0, 0, []
    while written < rows:
        need = min(file_rows, rows - written)
        buffered = sum(p.height for p in pending)
        while buffered < need:
            pending.append(
                real.with_columns(
                    pl.col("encounter_id") + tile * ID_STRIDE,
                    pl.col("patient_nbr") + tile * ID_STRIDE,
                )
            )
            buffered += real.height
            tile += 1
        frame = pl.concat(pending)
        frame.head(need).write_parquet(folder / f"part-{written // file_rows:05d}.parquet", row_group_size=50_000)
        pending = [frame.slice(need)] if frame.height > need else []
        written += need
    done.write_text(json.dumps({"rows": rows, "file_rows": file_rows}))
    return folder


def run_one(kind: str, folder: Path, workers: int, partition_rows: int, validate: int | None) -> dict:
    """One measurement, in this (fresh) process: preprocess or the Polars baseline."""
    start = time.perf_counter()
    if kind == "polars":
        import polars as pl

        frame = pl.read_parquet(sorted(folder.glob("*.parquet")))
        rows = frame.height
        return {"rows": rows, "seconds": time.perf_counter() - start}
    import shutil
    import tempfile

    from synth.config import PipelineConfig
    from synth.preprocess import preprocess

    config = PipelineConfig.model_validate(
        CONFIG | {"preprocess": {"partition_rows": partition_rows}, "validation": {"partitions": validate}}
    )
    work = Path(tempfile.mkdtemp(prefix="synth-bench-", dir=DATA))
    try:
        prepared = preprocess(
            str(folder), config, work, workers=workers, log=lambda line: print(f"    {line}", flush=True)
        )
        seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "rows": prepared.rows,
        "seconds": seconds,
        "partitions": prepared.partitions,
        "validated_partitions": prepared.gate.partitions_validated,
        "gate_passed": prepared.gate.success,
        "partition_seconds": prepared.partition_seconds,
        "gx_seconds": prepared.validation_seconds,
        "gx_share": prepared.validation_seconds / max(prepared.partition_seconds, 1e-9),
    }


def measure(args: list[str]) -> dict:
    """Run ``run_one`` in a subprocess; sample the RSS of its whole process tree.

    The machine's 1-minute load average before the run is recorded too: on a shared
    machine other work competes for the cores and the timings say so.
    """
    load_before = os.getloadavg()[0]
    process = subprocess.Popen([sys.executable, __file__, "--one", *args], stdout=subprocess.PIPE, text=True, cwd=REPO)
    lines = []
    with common.TreeSampler(process.pid, interval=0.1) as tree:
        for line in process.stdout:
            if line.startswith("RESULT "):
                lines.append(line)
            else:
                print(line, end="", flush=True)
        process.wait()
    if process.returncode != 0 or not lines:
        raise SystemExit(f"measurement {args} failed (exit {process.returncode})")
    result = json.loads(lines[-1][len("RESULT ") :])
    result["peak_rss_mb"] = tree.peak_bytes / 2**20
    result["cpu_seconds"] = tree.cpu_seconds  # user + system of the whole tree (last sample of each process)
    result["load_average_before"] = load_before
    result["rows_per_second"] = result["rows"] / result["seconds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--file-rows", type=int, default=1_000_000, help="rows per Parquet file of the extract")
    parser.add_argument("--partition-rows", type=int, default=500_000, help="the pipeline's default")
    parser.add_argument(
        "--validate",
        type=int,
        default=None,
        help="run the GX gate on a seeded sample of this many partitions (default: every partition)",
    )
    parser.add_argument(
        "--one", nargs=5, metavar=("KIND", "FOLDER", "WORKERS", "PARTITION_ROWS", "VALIDATE"), help=argparse.SUPPRESS
    )
    parser.add_argument("--smoke", action="store_true", help="tile the repository's 10,000-row sample (the tests)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder (default benchmarks/results)")
    args = parser.parse_args()
    if args.one:
        kind, folder, workers, partition_rows, validate = args.one
        result = run_one(
            kind, Path(folder), int(workers), int(partition_rows), None if validate == "all" else int(validate)
        )
        print("RESULT " + json.dumps(result), flush=True)
        return

    validate = "all" if args.validate is None else str(args.validate)
    print(
        "Extract: diabetes_130 (101,766 real encounters) tiled with fresh patient and encounter ids "
        f"(+ tile x {ID_STRIDE:,}), Parquet files of {args.file_rows:,} rows; "
        f"partitions of {args.partition_rows:,} rows; "
        f"GX gate on {'every partition' if validate == 'all' else f'a seeded sample of {validate} partitions'}.\n"
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB; Python {platform.python_version()}.",
        flush=True,
    )
    results = []
    for rows in args.rows:
        folder = build_extract(rows, args.file_rows, args.smoke)
        baseline = measure(["polars", str(folder), "0", "0", "all"])
        results.append({"kind": "polars read_parquet (baseline)", "workers": None, **baseline})
        _print(results[-1], baseline)
        for workers in args.workers:
            result = measure(["preprocess", str(folder), str(workers), str(args.partition_rows), validate])
            results.append({"kind": "preprocess", "workers": workers, **result})
            _print(results[-1], baseline)
    for rows in args.rows:
        by_workers = {r["workers"]: r for r in results if r["rows"] == rows and r["kind"] == "preprocess"}
        if 1 in by_workers and 2 in by_workers:
            speedup = by_workers[2]["rows_per_second"] / by_workers[1]["rows_per_second"]
            print(f"{rows:>12,} rows: 2 workers / 1 worker = {speedup:.2f}x rows/s")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / "preprocess.json"
    out.write_text(
        json.dumps(
            {
                "extract": "diabetes_130 tiled with fresh patient and encounter ids",
                "validate": validate,
                "results": results,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


def _print(result: dict, baseline: dict) -> None:
    who = result["kind"] + (
        f", {result['workers']} worker{'s' if result['workers'] > 1 else ''}" if result["workers"] else ""
    )
    ratio = result["rows_per_second"] / baseline["rows_per_second"]
    print(
        f"{result['rows']:>12,} rows  {who:<34} {result['seconds']:8.1f} s  "
        f"{result['rows_per_second']:>12,.0f} rows/s  "
        f"peak RSS {result['peak_rss_mb']:>8,.0f} MB  {ratio:6.3f}x baseline  "
        f"(CPU {result['cpu_seconds']:,.0f} s; load {result['load_average_before']:.1f})"
        + (f"  GX {result['gx_share']:.0%} of partition time" if "gx_share" in result else ""),
        flush=True,
    )


if __name__ == "__main__":
    main()
