"""Benchmark: nearest-record distances (Gower; DCR and NNDR) against the ``gower`` package.

    python benchmarks/distance.py                 # 10,000 query x 9,999 reference rows
    python benchmarks/distance.py --smoke         # 300 x 299 (the test suite runs this)

Rows are diabetes_130's first ``--query-rows`` (the "synthetic" side) and the next
``--query-rows - 1`` (the "real" side), the 48 modelled columns. The reference side has
one row fewer on purpose: ``gower.gower_matrix(X, Y)`` with as many rows in X as in Y
assumes X is Y and mirrors its upper triangle, so on two different tables of equal size
its answer is wrong (see ``synth.evaluation.gower``).

Cases, each in a fresh process:

* ``gower package`` (the baseline) - ``gower.gower_matrix`` (the full matrix; the package
  has no nearest-k search for two tables), then the two smallest distances per row;
* ``synth nearest`` - ``synth.evaluation.gower.nearest(k=2)``: blocked torch distances
  with a running top-2, never the full matrix; encoding and ranges included in the time.

Agreement: the largest absolute difference between the two top-2 distance lists (DCR is
the first, NNDR their ratio), required below 1e-6.
"""

from __future__ import annotations

import argparse
import time

import common


def _tables(data: str, rows: int):
    import polars as pl

    from synth.config import parse_config
    from synth.schema import infer_schema

    table = pl.read_csv(data, null_values=["?"], n_rows=2 * rows, infer_schema_length=None).to_arrow()
    schema = infer_schema(table, parse_config({}))
    return table.slice(0, rows), table.slice(rows, rows - 1), schema


def run_package(case: dict) -> dict:
    import gower
    import numpy as np

    from synth.evaluation.gower import as_gower_package_frame

    query, reference, schema = _tables(case["data"], case["rows"])

    q, r = as_gower_package_frame(query, schema), as_gower_package_frame(reference, schema)
    start = time.perf_counter()
    matrix = gower.gower_matrix(q, r)
    top2 = np.sort(np.partition(matrix, 1, axis=1)[:, :2], axis=1)
    seconds = time.perf_counter() - start
    np.save(case["top2"], top2)
    return {"rows": len(q), "seconds": seconds, "pairs": len(q) * len(r)}


def run_ours(case: dict) -> dict:
    import numpy as np

    from synth.evaluation.distance import nndr
    from synth.evaluation.encoding import encode
    from synth.evaluation.gower import GowerScale, nearest

    query, reference, schema = _tables(case["data"], case["rows"])
    start = time.perf_counter()
    _, (q, r) = encode(schema, query, reference)
    distances, _ = nearest(q, r, GowerScale.fit(q, r), k=2)
    ratios = nndr(distances)
    seconds = time.perf_counter() - start
    expected = np.load(case["top2"]).astype(np.float32)
    return {
        "rows": len(query),
        "seconds": seconds,
        "pairs": len(query) * len(reference),
        "max_abs_difference": float(np.abs(distances - expected).max()),
        "nndr_max_abs_difference": float(np.abs(ratios - nndr(expected)).max()),
    }


def main() -> None:
    if common.run_child({"package": run_package, "ours": run_ours}):
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--query-rows", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--smoke", action="store_true", help="300 x 299 rows: checks the script runs")
    parser.add_argument("--out", help="results folder (default benchmarks/results, smoke: benchmarks/results/smoke)")
    args = parser.parse_args()
    if args.smoke:
        args.query_rows, args.threads = 300, args.threads or 1
    rows = args.query_rows
    data = common.diabetes(args.smoke)

    info = common.machine()
    report = common.Report("distance", info)
    description = f"Gower top-2 (DCR, NNDR), {rows:,} x {rows - 1:,} rows of diabetes_130"
    common.header("distance", info, description, threads=args.threads)
    out = common.results_dir(args)
    out.mkdir(parents=True, exist_ok=True)
    top2 = out / "distance-gower-top2.npy"
    base = {"rows": rows, "top2": str(top2), "threads": args.threads, "data": str(data)}
    try:
        baseline = report.add("gower package (baseline)", common.measure(__file__, {"kind": "package", **base}))
        ours = report.add("synth nearest (k=2)", common.measure(__file__, {"kind": "ours", **base}), baseline)
    finally:
        top2.unlink(missing_ok=True)
    speedup = baseline["seconds"] / ours["seconds"]
    report.targets.append(common.Target(
        f"nearest-record distances >= 50x faster than the gower package ({rows:,} x {rows - 1:,})",
        f"{ours['seconds']:.2f} s vs {baseline['seconds']:.1f} s = {speedup:.0f}x",
        speedup >= 50,
    ))
    report.targets.append(common.Target(
        "same values (top-2 distances within 1e-6)",
        f"max |difference| {ours['max_abs_difference']:.2e} (NNDR {ours['nndr_max_abs_difference']:.2e})",
        ours["max_abs_difference"] < 1e-6,
    ))
    report.write(out)


if __name__ == "__main__":
    main()
