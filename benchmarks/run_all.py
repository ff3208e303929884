"""Run every stage's benchmark, then print one summary: the tables, the targets, the machine.

    python benchmarks/run_all.py                    # the full benchmarks (an hour or more on 2 cores)
    python benchmarks/run_all.py --only train sample
    python benchmarks/run_all.py --smoke            # tiny sizes, minutes (what the tests run, stage by stage)
    python benchmarks/run_all.py --summary          # print the summary of the last results only

``make bench`` runs the first form. Each stage is its own script (see benchmarks/README.md)
and writes ``<stage>.json`` into the results folder; this script only runs them in turn and
reads the JSON back. A stage that fails is reported and the others still run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import common

PY = sys.executable
#: stage -> (full command, smoke command); "{out}" is the results folder, "{threads}" torch threads.
STAGES = {
    "preprocess": (
        ["preprocess.py", "--out", "{out}"],
        ["preprocess.py", "--rows", "20000", "40000", "--file-rows", "10000", "--partition-rows", "10000",
         "--smoke", "--out", "{out}"],
    ),
    "train": (
        ["train.py", "--threads", "{threads}", "--out", "{out}"],
        ["train.py", "--smoke", "--out", "{out}"],
    ),
    "sample": (
        ["sample.py", "--threads", "{threads}", "--out", "{out}"],
        ["sample.py", "--smoke", "--out", "{out}"],
    ),
    "distance": (
        ["distance.py", "--threads", "{threads}", "--out", "{out}"],
        ["distance.py", "--smoke", "--out", "{out}"],
    ),
    "evaluate": (
        ["evaluate_scale.py", "--out", "{out}"],
        ["evaluate_scale.py", "--synthetic-rows", "5000", "--real-rows", "6000", "--smoke", "--out", "{out}"],
    ),
}


def run(stage: str, smoke: bool, out: Path, threads: int) -> bool:
    command = [PY, str(common.BENCH / STAGES[stage][smoke][0])]
    command += [a.format(out=out, threads=threads) for a in STAGES[stage][smoke][1:]]
    print(f"\n### {stage}: {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    code = subprocess.call(command, cwd=common.REPO)
    print(f"### {stage}: {'ok' if code == 0 else f'FAILED (exit {code})'} in {time.perf_counter() - start:.0f} s")
    return code == 0


def summary(out: Path, stages: list[str], failed: list[str]) -> None:
    """One table of every stage's rows, then every target; from the JSON files in ``out``."""
    info = common.machine()
    print("\n" + "=" * 100 + "\nSUMMARY")
    common.print_machine(info)
    print(common.HEADER)
    targets = []
    for stage in stages:
        path = out / f"{stage}.json"
        if not path.is_file():
            print(f"{stage}: no results ({path})")
            continue
        payload = json.loads(path.read_text())
        if stage == "preprocess":
            payload = _from_preprocess(payload)
        print(f"-- {stage}" + ("  (stale: this run failed)" if stage in failed else ""))
        for row in payload["rows"]:
            print(common.format_row(row))
        targets += [(stage, t) for t in payload.get("targets", [])]
    print("Targets:")
    for stage, t in targets:
        print(f"{stage:>10} " + common.Target(**t).line().lstrip())
    print(f"Results: {out}/<stage>.json")


def _from_preprocess(payload: dict) -> dict:
    """benchmarks/preprocess.py's JSON in the common shape, with the issue's two targets."""
    rows, targets = [], []
    by_size: dict[int, dict] = {}
    for r in payload["results"]:
        row = {**r, "case": r["kind"] + (f", {r['workers']} worker(s)" if r.get("workers") else "") + f" {r['rows']:,}",
               "load_before": r.get("load_average_before", 0)}
        if r.get("workers") is None:
            baseline = row
        else:
            row["ratio_to_baseline"] = row["rows_per_second"] / baseline["rows_per_second"]
            by_size.setdefault(r["rows"], {})[r["workers"]] = row
        rows.append(row)
    for size, runs in sorted(by_size.items()):
        if 1 in runs and 2 in runs:
            speedup = runs[2]["rows_per_second"] / runs[1]["rows_per_second"]
            targets.append({"name": f"2 Dask workers >= 1.6x the rows/s of 1 ({size:,} rows)",
                            "measured": f"{speedup:.2f}x", "met": speedup >= 1.6, "bound": ""})
    sizes = sorted(by_size)
    if len(sizes) > 1:
        for workers in sorted(by_size[sizes[0]]):
            small, big = by_size[sizes[0]].get(workers), by_size[sizes[-1]].get(workers)
            if small and big:
                growth = big["peak_rss_mb"] / small["peak_rss_mb"] - 1
                targets.append({"name": f"peak RSS flat from {sizes[0]:,} to {sizes[-1]:,} rows ({workers} worker(s))",
                                "measured": f"{small['peak_rss_mb']:,.0f} -> {big['peak_rss_mb']:,.0f} MB ({growth:+.0%})",
                                "met": growth <= 0.10, "bound": ""})
    return {"rows": rows, "targets": targets}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(STAGES), default=list(STAGES))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks every script runs")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per case (0: torch's default)")
    parser.add_argument("--summary", action="store_true", help="only print the summary of existing results")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or (common.RESULTS / "smoke" if args.smoke else common.RESULTS)
    failed = []
    if not args.summary:
        for stage in args.only:
            if not run(stage, args.smoke, out, args.threads):
                failed.append(stage)
    summary(out, args.only, failed)
    if failed:
        raise SystemExit(f"failed stages: {', '.join(failed)}")


if __name__ == "__main__":
    main()
