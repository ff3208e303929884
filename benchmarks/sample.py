"""Benchmark: chunked sampling of 1M and 10M rows to Parquet, against the I/O floor and SDV.

    python benchmarks/sample.py                   # 1M and 10M rows, chunks of 100,000
    python benchmarks/sample.py --rows 1000000 --chunk-rows 200000
    python benchmarks/sample.py --smoke           # tiny sizes, SDV skipped (the test suite runs this)
    python benchmarks/sample.py --rows 1000000 --skip-sdv --workers 2 --dask-workers 1 2

The model is our row-level VAE trained on diabetes_130 (48 modelled columns, of which
three diagnosis codes with 500+ categories each; ``--train-epochs``, default 1: sampling
cost does not depend on how long the network trained). It is saved once under
benchmarks/data/ and every case loads it from disk, as a monthly run would.

Cases, each in a fresh process, for each row count:

* ``pyarrow floor`` (the baseline) - one chunk of this model's output, materialised before
  the clock starts, written ``rows / chunk_rows`` times as Parquet parts with the same
  writer and compression our sampler uses (zstd, atomic rename): the cost of the bytes alone;
* ``synth sample_to_parquet`` - the library call a run makes: generate, decode, write parts;
* ``synth sample_to_parquet, N worker processes`` (``--workers``, default 2) - the same call with
  ``workers=N``: N spawned processes, each loading the model from its folder (inside the clock)
  and running torch on one thread;
* ``synth sample_to_parquet on Dask, N workers`` (``--dask-workers``, default 1 and 2) - the same
  call with ``dask_address`` of a LocalCluster of N single-threaded worker processes, started
  before the clock (an existing cluster is already running); each worker loads the model inside it;
* ``SDV GaussianCopula`` - fitted on the same 48 columns before the clock starts, then
  ``sample`` in chunks of the same size, each chunk converted to Arrow and written the same way.

Peak RSS is of the case's whole process tree (worker processes included); for our sampler
it should not grow from 1M to 10M rows (memory is bounded by the chunk, not the total).
Every case of ours returns a SHA-256 over its parts: they must agree, whoever wrote them.
"""

from __future__ import annotations

import argparse
import shutil
import time
import warnings
from pathlib import Path

import common

PARQUET_OPTIONS = {"compression": "zstd"}  # what synth.io.atomic.write_parquet_atomic uses


# -- child side ---------------------------------------------------------------------------------
def _real(data: str, rows: int):
    from synth.config import parse_config
    from synth.io.sources import read_table
    from synth.schema import infer_schema

    config = parse_config({"source": {"na_values": ["?"]}, "model": {"name": "vae"}})
    table = read_table(data, config)
    if rows < table.num_rows:
        table = table.slice(0, rows)
    return table, infer_schema(table, config), config


def train_model(case: dict) -> dict:
    from synth.models import synthesizer_for

    warnings.simplefilter("ignore")
    table, schema, config = _real(case["data"], case["train_rows"])
    config = config.with_overrides(model={"epochs": case["epochs"]})
    model = synthesizer_for(config, schema)
    start = time.perf_counter()
    model.fit(table, schema)
    seconds = time.perf_counter() - start
    model.save(case["model"])
    return {"rows": table.num_rows * model.training_.epochs_run, "seconds": seconds}


def write_floor(case: dict) -> dict:
    from synth.io.atomic import write_parquet_atomic
    from synth.models import load_synthesizer
    from synth.sampling import PART

    chunk = load_synthesizer(case["model"]).sample(case["chunk_rows"], seed=0)  # materialised: not timed
    folder = Path(case["folder"])
    parts, rows = _parts(case["rows"], case["chunk_rows"]), 0
    start = time.perf_counter()
    for k, n in enumerate(parts):
        write_parquet_atomic(folder / PART.format(k), chunk if n == chunk.num_rows else chunk.slice(0, n))
        rows += n
    seconds = time.perf_counter() - start
    return {"rows": rows, "seconds": seconds, "bytes": _size(folder)}


def sample_ours(case: dict) -> dict:
    from synth.models import load_synthesizer
    from synth.sampling import sample_to_parquet

    workers = case.get("workers", 1)
    start = time.perf_counter()
    model = load_synthesizer(case["model"]) if workers == 1 else None  # workers load their own
    loaded = time.perf_counter()
    result = sample_to_parquet(
        model, case["rows"], case["folder"], seed=0, chunk_rows=case["chunk_rows"], workers=workers,
        model_dir=case["model"],
    )
    seconds = time.perf_counter() - loaded
    folder = Path(case["folder"])
    return {"rows": result.rows, "seconds": seconds, "load_seconds": loaded - start, "bytes": _size(folder),
            "sha256": _digest(folder)}


def sample_dask(case: dict) -> dict:
    import logging

    from distributed import LocalCluster

    from synth.sampling import sample_to_parquet

    import dask

    tick = time.perf_counter()
    # Dask's nannies set MALLOC_TRIM_THRESHOLD_=65536 in their workers, which turns off glibc's
    # adaptive mmap threshold: every (chunk x width) array is then mapped and faulted in anew,
    # and a worker sampled at 56% of the rate without it (28,398 vs 50,538 rows/s, 1 worker,
    # 500k rows). The cluster is configured as the README advises an existing one to be.
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}), LocalCluster(
        n_workers=case["dask_workers"], threads_per_worker=1, processes=True, dashboard_address=None,
        silence_logs=logging.ERROR, env={"OMP_NUM_THREADS": "1", "POLARS_MAX_THREADS": "1"},
    ) as cluster:
        started = time.perf_counter()
        result = sample_to_parquet(
            None, case["rows"], case["folder"], seed=0, chunk_rows=case["chunk_rows"],
            dask_address=cluster.scheduler_address, model_dir=case["model"],
        )
        seconds = time.perf_counter() - started
    folder = Path(case["folder"])
    return {"rows": result.rows, "seconds": seconds, "cluster_start_seconds": started - tick, "bytes": _size(folder),
            "sha256": _digest(folder)}


def sample_copula(case: dict) -> dict:
    import pyarrow as pa
    from sdv.metadata import Metadata
    from sdv.single_table import GaussianCopulaSynthesizer

    from synth.config import ColumnKind
    from synth.io.atomic import write_parquet_atomic
    from synth.sampling import PART

    warnings.simplefilter("ignore")
    table, schema, _ = _real(case["data"], case["train_rows"])
    modelled = [c for c in schema.columns if c.kind is not ColumnKind.IDENTIFIER]
    sdtype = {ColumnKind.NUMERICAL: "numerical", ColumnKind.DATETIME: "datetime"}
    metadata = Metadata.load_from_dict(
        {"tables": {"table": {"columns": {c.name: {"sdtype": sdtype.get(c.kind, "categorical")} for c in modelled}}}}
    )
    synthesizer = GaussianCopulaSynthesizer(metadata)
    tick = time.perf_counter()
    synthesizer.fit({"table": table.select([c.name for c in modelled]).to_pandas()})
    fit_seconds = time.perf_counter() - tick
    folder = Path(case["folder"])
    rows = 0
    start = time.perf_counter()
    for k, n in enumerate(_parts(case["rows"], case["chunk_rows"])):
        frame = synthesizer.sample(n)["table"]
        write_parquet_atomic(folder / PART.format(k), pa.Table.from_pandas(frame, preserve_index=False))
        rows += n
    seconds = time.perf_counter() - start
    return {"rows": rows, "seconds": seconds, "fit_seconds": fit_seconds, "bytes": _size(folder)}


def _parts(rows: int, chunk_rows: int) -> list[int]:
    return [min(chunk_rows, rows - start) for start in range(0, rows, chunk_rows)]


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.parquet"))


def _digest(folder: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    for part in sorted(folder.glob("part-*.parquet")):
        digest.update(part.name.encode())
        digest.update(part.read_bytes())
    return digest.hexdigest()


# -- parent side ----------------------------------------------------------------------------------
def main() -> None:
    if common.run_child(
        {"train": train_model, "floor": write_floor, "ours": sample_ours, "dask": sample_dask, "copula": sample_copula}
    ):
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--train-epochs", type=int, default=1)
    parser.add_argument("--train-rows", type=int, default=10**9, help="train on the first TRAIN_ROWS rows (default all)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads in every case (0: torch's default)")
    parser.add_argument("--workers", type=int, nargs="*", default=[2], help="local worker-process counts to run")
    parser.add_argument(
        "--dask-workers", type=int, nargs="*", default=[1, 2], help="Dask LocalCluster worker counts to run"
    )
    parser.add_argument("--skip-sdv", action="store_true", help="no GaussianCopula baseline")
    parser.add_argument(
        "--sdv-rows", type=int, nargs="+", default=None,
        help="run GaussianCopula only at these row counts (default: all); its cost per chunk is constant",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and no SDV: checks the script runs")
    parser.add_argument("--out", help="results folder (default benchmarks/results, smoke: benchmarks/results/smoke)")
    args = parser.parse_args()
    if args.smoke:
        args.rows, args.chunk_rows, args.train_rows, args.train_epochs = [2_000, 4_000], 1_000, 1_000, 1
        args.dask_workers = [2] if args.dask_workers else []  # each parallel case starts processes: few of them
        args.threads = args.threads or 1
    data = common.diabetes(args.smoke)

    info = common.machine()
    report = common.Report("sample", info)
    description = f"VAE on diabetes_130 to Parquet in chunks of {args.chunk_rows:,} rows"
    common.header("sample", info, description, threads=args.threads)
    sdv = not (args.skip_sdv or args.smoke)
    if sdv and not common.sdv_available():
        raise SystemExit("SDV is not installed: pip install -e '.[bench]' (or run with --skip-sdv)")
    if not sdv:
        report.note("SDV GaussianCopula baseline skipped" + (" (smoke mode)" if args.smoke else "") + "; targets not checked")

    work = common.DATA / ("sample-smoke" if args.smoke else "sample")
    from synth.manifest import code_version

    # Keyed by the library's code: a model saved by other code is retrained, never half-loaded.
    model = work / f"model-vae-{args.train_rows}-e{args.train_epochs}-{code_version(('synth',))[:12]}"
    base = {
        "threads": args.threads, "chunk_rows": args.chunk_rows, "model": str(model), "train_rows": args.train_rows,
        "data": str(data),
    }
    if not (model / "model.json").is_file():
        trained = common.measure(__file__, {"kind": "train", "epochs": args.train_epochs, **base})
        report.note(f"trained the model to sample from in {trained['seconds']:.0f} s ({model})")

    by_rows: dict[int, dict[str, dict]] = {}
    for rows in args.rows:
        # name in the table -> (the case's key in the results, what the child runs)
        cases = {"pyarrow write floor (baseline)": ("floor", {"kind": "floor"}),
                 "synth sample_to_parquet": ("ours", {"kind": "ours"})}
        parallel = not args.smoke or rows == max(args.rows)  # smoke: the parallel cases at the largest size only
        for n in args.workers if parallel else []:
            cases[f"synth sample_to_parquet, {n} worker processes"] = (f"workers-{n}", {"kind": "ours", "workers": n})
        for n in args.dask_workers if parallel else []:
            cases[f"synth sample_to_parquet on Dask, {n} worker{'s' * (n > 1)}"] = (
                f"dask-{n}", {"kind": "dask", "dask_workers": n}
            )
        if sdv and (args.sdv_rows is None or rows in args.sdv_rows):
            cases["SDV GaussianCopula sample + write"] = ("copula", {"kind": "copula"})
        found, baseline = {}, None
        for name, (key, child) in cases.items():
            folder = work / f"out-{key}-{rows}"
            shutil.rmtree(folder, ignore_errors=True)
            try:
                result = common.measure(__file__, {**child, "rows": rows, "folder": str(folder), **base})
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            found[key] = report.add(f"{name} {rows:,}", result, baseline)
            baseline = baseline or found[key]
        by_rows[rows] = found
    _targets(report, by_rows)
    report.write(common.results_dir(args))


def _targets(report: common.Report, by_rows: dict[int, dict[str, dict]]) -> None:
    largest, smallest = max(by_rows), min(by_rows)
    big = by_rows[largest]
    times = big["ours"]["seconds"] / big["floor"]["seconds"]
    report.targets.append(common.Target(
        f"sampling {largest:,} rows <= 3x the PyArrow write floor",
        f"{big['ours']['seconds']:.1f} s vs {big['floor']['seconds']:.1f} s = {times:.1f}x",
        times <= 3.0,
        "" if times <= 3.0 else "generation is compute-bound (decoder matmuls, one exponential per output logit); "
        "see benchmarks/README.md",
    ))
    parallel = {key: found for key, found in big.items() if key.startswith(("workers-", "dask-"))}
    if "workers-2" in parallel:
        two = parallel["workers-2"]
        times_two = two["seconds"] / big["floor"]["seconds"]
        report.targets.append(common.Target(
            f"sampling {largest:,} rows with 2 worker processes <= 6x the PyArrow write floor",
            f"{two['seconds']:.1f} s vs {big['floor']['seconds']:.1f} s = {times_two:.1f}x "
            f"({two['rows_per_second'] / big['ours']['rows_per_second']:.2f}x the rows/s of one process)",
            times_two <= 6.0,
        ))
    if "dask-1" in parallel and "dask-2" in parallel:
        speed = parallel["dask-2"]["rows_per_second"] / parallel["dask-1"]["rows_per_second"]
        report.targets.append(common.Target(
            f"2 Dask workers >= 1.8x the rows/s of 1 ({largest:,} rows)",
            f"{parallel['dask-2']['rows_per_second']:,.0f} vs {parallel['dask-1']['rows_per_second']:,.0f} rows/s "
            f"= {speed:.2f}x",
            speed >= 1.8,
        ))
    for rows, found in sorted(by_rows.items()):
        digests = {key: row["sha256"] for key, row in found.items() if "sha256" in row}
        if len(digests) > 1:
            report.targets.append(common.Target(
                f"identical part bytes whoever writes them ({rows:,} rows)",
                ", ".join(f"{key} {digest[:12]}" for key, digest in digests.items()),
                len(set(digests.values())) == 1,
            ))
    copula = max((rows for rows, found in by_rows.items() if "copula" in found), default=None)
    if copula is not None:
        ours, theirs = by_rows[copula]["ours"], by_rows[copula]["copula"]
        speed = ours["rows_per_second"] / theirs["rows_per_second"]
        report.targets.append(common.Target(
            f"sampling faster than SDV GaussianCopula (both at {copula:,} rows)",
            f"{ours['rows_per_second']:,.0f} vs {theirs['rows_per_second']:,.0f} rows/s = {speed:.2f}x",
            speed > 1.0,
        ))
    if largest != smallest:
        small_rss, big_rss = by_rows[smallest]["ours"]["peak_rss_mb"], big["ours"]["peak_rss_mb"]
        growth = big_rss / small_rss - 1
        report.targets.append(common.Target(
            f"peak RSS for {largest:,} rows <= 10% above {smallest:,} and under 2 GB",
            f"{big_rss:,.0f} MB vs {small_rss:,.0f} MB ({growth:+.1%})",
            growth <= 0.10 and big_rss < 2048,
        ))


if __name__ == "__main__":
    main()
