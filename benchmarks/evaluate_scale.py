"""Time the full evaluation of 1,000,000 synthetic rows against 100,000 real training rows.

The real side is the diabetes_130 extract (101,766 encounters): a 20,000-row holdout by
patient, and the remaining rows topped up to 100,000 training rows by resampling with
numeric jitter. The "synthetic" side is training rows resampled with replacement, with
integer jitter and 5 % of each categorical column shuffled: realistic values, known
size, no model needed. It is written as 10 Parquet parts, as the sampler writes them,
and evaluated from that folder, so reading is timed too.

    python benchmarks/evaluate_scale.py [--data PATH] [--synthetic-rows N] [--real-rows N] [--smoke]
    python benchmarks/evaluate_scale.py --memory 1000000,10000000 [--real-rows N] [--smoke]

``--smoke`` reads the repository's 10,000-row sample of diabetes_130 (the tests run it);
otherwise the full file from ``../shared/data`` (the script says where to get it if absent).

Prints the total seconds and each check's seconds (``metrics["timings"]``).

``--memory`` measures what the evaluation's memory grows with: for each synthetic size it
writes the parts in one process, then evaluates them in a fresh one and takes that
process's peak resident memory (``ru_maxrss``), so neither generating the rows nor an
earlier size counts. The real side is the same at every size; it prints each peak and
the ratio of the largest size's peak to the smallest's (1.0: memory does not grow with
the synthetic rows).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import common
from synth.config import parse_config
from synth.evaluation import evaluate
from synth.io.sources import read_table
from synth.schema import infer_schema

HOLDOUT_ROWS = 20_000


def perturbed(table: pa.Table, rows: int, rng: np.random.Generator, schema) -> pa.Table:
    """``rows`` rows resampled from ``table``, integers jittered by +-1, 5 % of categories shuffled."""
    picked = table.take(rng.integers(0, table.num_rows, rows))
    columns = {}
    for spec in schema.columns:
        column = picked[spec.name]
        if spec.kind.value == "numerical" and pa.types.is_integer(column.type):
            values = column.to_numpy(zero_copy_only=False).astype(np.int64)
            jitter = rng.integers(-1, 2, rows)
            column = pa.array(np.maximum(values + jitter, 0), type=column.type)
        elif spec.kind.value == "categorical":
            values = column.combine_chunks()
            swap = np.flatnonzero(rng.random(rows) < 0.05)
            order = np.arange(rows)
            order[swap] = rng.permutation(swap)
            column = values.take(pa.array(order))
        columns[spec.name] = column
    return pa.table(columns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="diabetic_data.csv (default: ../shared/data's)")
    parser.add_argument("--smoke", action="store_true", help="read the repository's 10,000-row sample")
    parser.add_argument("--synthetic-rows", type=int, default=1_000_000)
    parser.add_argument("--real-rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write evaluate.json (with the machine) here")
    parser.add_argument("--memory", default=None, help="comma-separated synthetic sizes: peak RSS of each, and ratio")
    parser.add_argument("--parts", type=Path, default=None, help=argparse.SUPPRESS)  # --memory's child processes
    parser.add_argument("--write-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory:
        return _memory(args)

    rng = np.random.default_rng(args.seed)
    config = parse_config({"source": {"na_values": ["?"]}, "evaluation": {
        "target": "readmitted", "sensitive": ["A1Cresult"], "protected": ["race", "gender"]}})
    table = read_table(args.data or common.diabetes(args.smoke), config)
    schema = infer_schema(table, config)
    patients = pc.unique(table["patient_nbr"]).to_numpy()
    held = rng.permutation(patients)
    mask = pc.is_in(table["patient_nbr"], value_set=pa.array(held[: len(held) // 5])).to_numpy(zero_copy_only=False)
    holdout = table.filter(pa.array(mask)).slice(0, HOLDOUT_ROWS)
    train = table.filter(pa.array(~mask))
    if train.num_rows < args.real_rows:
        train = pa.concat_tables([train, perturbed(train, args.real_rows - train.num_rows, rng, schema)])
    train = train.slice(0, args.real_rows)

    if args.parts is not None:  # a child of --memory: write the parts, or evaluate them and report
        if args.write_only:
            _write_parts(args, train, rng, schema, args.parts)
            return
        start = time.perf_counter()
        evaluate(train, str(args.parts), schema, config.evaluation, seed=args.seed, holdout=holdout, gate=config.gate)
        print(json.dumps({"rows": args.synthetic_rows, "seconds": time.perf_counter() - start,
                          "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
        return
    with tempfile.TemporaryDirectory() as folder:
        _write_parts(args, train, rng, schema, Path(folder))
        print(f"real training rows {train.num_rows:,}; holdout {holdout.num_rows:,}; synthetic {args.synthetic_rows:,}")
        start = time.perf_counter()
        metrics = evaluate(train, folder, schema, config.evaluation, seed=args.seed, holdout=holdout, gate=config.gate)
        seconds = time.perf_counter() - start
    print(f"evaluate: {seconds:.1f} s")
    if args.out is not None:
        _write_result(args, seconds, metrics)
    print(json.dumps(metrics["timings"], indent=2))
    headline = ["quality_score", "dcr_median", "dcr_holdout_median", "nndr_median", "pmse_ratio", "mia_auc",
                "correlation_similarity", "exact_collisions"]
    print(json.dumps({k: metrics.get(k) for k in headline} | {"sizes": {
        "distance": metrics["distance"], "membership": metrics["membership_inference"],
        "propensity": metrics["propensity"], "utility": metrics["utility"]}}, indent=2, default=str))


def _write_parts(args, train: pa.Table, rng: np.random.Generator, schema, folder: Path) -> None:
    """The synthetic rows as parts of at most 1M rows (10 parts at least), as the sampler writes them."""
    parts = max(10, -(-args.synthetic_rows // 1_000_000))
    for k in range(parts):
        rows = args.synthetic_rows // parts + (k < args.synthetic_rows % parts)
        pq.write_table(perturbed(train, rows, rng, schema), Path(folder) / f"part-{k:05d}.parquet")


def _memory(args) -> None:
    """Peak RSS of the evaluation alone at each synthetic size, each in a fresh process."""
    common_args = ["--real-rows", str(args.real_rows), "--seed", str(args.seed)]
    common_args += ["--smoke"] if args.smoke else (["--data", str(args.data)] if args.data else [])
    results = []
    for size in (int(s) for s in args.memory.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            child = [sys.executable, __file__, "--synthetic-rows", str(size), "--parts", folder, *common_args]
            subprocess.run([*child, "--write-only"], check=True)
            done = subprocess.run(child, check=True, capture_output=True, text=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        row = results[-1]
        print(f"evaluate {row['rows']:>12,} synthetic x {args.real_rows:,} real: {row['seconds']:7.1f} s, "
              f"peak RSS {row['peak_rss_mb']:,.0f} MB", flush=True)
    ratio = results[-1]["peak_rss_mb"] / results[0]["peak_rss_mb"]
    print(f"peak RSS {results[-1]['rows']:,} / {results[0]['rows']:,} synthetic rows: {ratio:.3f}")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "evaluate_memory.json").write_text(json.dumps(
            {"stage": "evaluate-memory", "machine": common.machine(), "rows": results, "ratio": ratio}, indent=2,
            default=str))


def _write_result(args, seconds: float, metrics: dict) -> None:
    """evaluate.json in the shape of the other benchmarks' results (benchmarks/common.py)."""
    info = common.machine()
    common.print_machine(info)
    row = {"case": f"evaluate {args.synthetic_rows:,} x {args.real_rows:,}", "rows": args.synthetic_rows,
           "seconds": seconds, "rows_per_second": args.synthetic_rows / seconds,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "load_before": info["load_average"][0], "timings": metrics["timings"]}
    target = {"name": f"full evaluation of {args.synthetic_rows:,} x {args.real_rows:,} under 10 minutes",
              "measured": f"{seconds:.0f} s", "met": seconds < 600, "bound": ""}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "evaluate.json").write_text(json.dumps(
        {"stage": "evaluate", "machine": info, "rows": [row], "targets": [target], "notes": []}, indent=2, default=str))


if __name__ == "__main__":
    main()
