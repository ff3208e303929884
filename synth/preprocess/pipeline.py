"""Preprocess an extract on a Dask cluster: partitions -> bounded sample -> schema -> clean dataset.

::

    source ──plan──> partitions ──scan (parallel)──> bounded sample ──> schema, profile, suite
                          └──────clean (parallel)──> clean/train, clean/holdout, stats, GX outcomes
                                                     └──> duplicate keys (parallel, by hash bucket)

Everything written here holds real data and goes to the *work* folder, never to the
output folder that is shared: the clean dataset (Parquet), ``stats.json``, the suite,
GX's full results and the gate report. A rerun with the same plan skips the partitions
already cleaned.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
from distributed import Client

from synth import assumptions
from synth.config import PipelineConfig
from synth.crashpoints import crash_point
from synth.errors import SchemaError
from synth.expectations import (
    UNIQUE,
    GateResult,
    build_expectations,
    gate_result,
    load_suite,
    merge_suites,
    profile_sample,
    split_table_level,
)
from synth.io.atomic import write_json_atomic, write_text_atomic
from synth.io.sources import parse_datetimes
from synth.manifest import code_version
from synth.preprocess.cluster import dask_client, iter_partitions, map_partitions
from synth.preprocess.dataset import PLAN
from synth.preprocess.partition_work import (
    CleanPlan,
    PartitionReport,
    check_unified,
    clean_partition,
    count_duplicates,
    finish_sample,
    finite_or_null,
    keep_smallest,
    load_report,
    merge_stats,
    scan_partition,
)
from synth.preprocess.partitions import Partition, plan_source
from synth.pii.rules import generalised_table
from synth.schema import Schema, infer_schema

KEY_BUCKET_ROWS = 4_000_000  # hashes per duplicate-count bucket (8 bytes each)
#: Fewer rows cannot be split into training, validation and holdout rows that each hold something
#: (the mixture transforms need two values, the evaluation's splits one row per class).
MIN_ROWS = 20

Log = Callable[[str], None]


@dataclass(frozen=True)
class Prepared:
    """The clean dataset and what the flow needs to know about it (no real values)."""

    clean_dir: str
    version: str  # the clean plan's hash: changes with the data's schema, suite or split
    schema: Schema
    rows: int
    train_rows: int
    holdout_rows: int
    partitions: int
    gate: GateResult
    report_path: str
    stats_path: str
    seconds: float
    partition_seconds: float  # the workers' time on the partitions, summed
    validation_seconds: float  # of which Great Expectations

    def to_dict(self) -> dict:
        data = asdict(self)
        data["schema"] = json.loads(self.schema.to_json())
        return data


def preprocess(
    source: str,
    config: PipelineConfig,
    work_dir: str | Path,
    *,
    workers: int | None = None,
    dask_address: str | None = None,
    log: Log = print,
    verbose: bool = False,
) -> Prepared:
    """Clean, validate and split ``source`` into a Parquet dataset under ``work_dir``.

    Args:
        source: a file, folder or glob (local path or URI), or ``sql:<query>``.
        config: read options, column declarations, transforms (sample size), validation.
        work_dir: the run's work folder (real data; never the shared output folder).
        workers: local Dask worker processes (``config.preprocess.workers`` when unset).
        dask_address: an existing Dask scheduler (``config.preprocess.dask_address`` when unset).
        log: progress lines (counts only).
        verbose: also log the Dask cluster's own INFO lines (scheduler, workers).

    Returns:
        The clean dataset and the gate's verdict. A failed gate is not an exception here:
        the caller decides (the flow stops before training).
    """
    start = time.perf_counter()
    work = Path(work_dir)
    partitions = plan_source(source, config, work / "raw", log)
    rows = sum(p.rows for p in partitions)
    if rows < MIN_ROWS:
        raise SchemaError(
            f"{source}: {rows} row{'s' * (rows != 1)}; at least {MIN_ROWS} are needed to train a model and keep some "
            "rows unseen for the privacy checks"
        )
    address = dask_address or config.preprocess.dask_address
    n_workers = workers or config.preprocess.workers
    log(f"{rows:,} rows in {len(partitions)} partitions; Dask {'at ' + address if address else 'local cluster'}")
    with dask_client(address, n_workers and min(n_workers, len(partitions)), verbose=verbose) as client:
        schema, expectations = _schema_and_suite(client, partitions, config, work, log)
        per_partition, row_counts = split_table_level(expectations)
        unique = tuple(e["kwargs"]["column"] for e in per_partition if e["type"] == UNIQUE)
        unique = tuple(c for c in dict.fromkeys(unique) if c in schema.names)
        plan = _clean_plan(schema, work / "clean", config, per_partition, partitions, unique, rows)
        reports, duplicates = _clean_all(client, plan, partitions, log)

    gate = gate_result(
        {r.index: r.outcomes for r in reports if r.outcomes is not None},
        rows=sum(r.rows for r in reports),
        partitions=len(partitions),
        row_counts=row_counts,
        duplicates=duplicates,
        expectations=len(expectations),
        cast_failures=_sum_counts(r.cast_failures for r in reports),
    )
    stats = {"rows": gate.rows, "columns": merge_stats([r.stats for r in reports], schema)}
    for note in assumptions.from_stats(stats, schema, _sum_counts(r.non_finite for r in reports)):
        log(note)
    partition_seconds = sum(r.seconds for r in reports)
    validation_seconds = sum(r.validation_seconds for r in reports)
    log(
        f"Great Expectations: {validation_seconds:.1f}s of the workers' {partition_seconds:.1f}s on the partitions "
        f"({validation_seconds / max(partition_seconds, 1e-9):.0%})"
    )
    stats_path = write_json_atomic(work / "stats.json", stats)
    report_path = write_text_atomic(work / "validation.md", gate.markdown())
    write_json_atomic(work / "validation.json", gate.to_dict())
    return Prepared(
        clean_dir=plan.clean_dir,
        version=plan.version,
        schema=schema,
        rows=gate.rows,
        train_rows=sum(r.train_rows for r in reports),
        holdout_rows=sum(r.holdout_rows for r in reports),
        partitions=len(partitions),
        gate=gate,
        report_path=str(report_path),
        stats_path=str(stats_path),
        seconds=time.perf_counter() - start,
        partition_seconds=partition_seconds,
        validation_seconds=validation_seconds,
    )


def _schema_and_suite(
    client: Client, partitions: list[Partition], config: PipelineConfig, work: Path, log: Log
) -> tuple[Schema, list[dict]]:
    """Scan every partition for the bounded sample; infer the schema and build the suite from it."""
    sample_rows = config.transforms.fit_sample_rows
    schemas, sample = {}, None
    scans = iter_partitions(
        client, scan_partition, partitions, config.drop, sample_rows, config.seed, on_result=_progress(log, "scanned")
    )
    files = {p.index: p.uri for p in partitions}
    with contextlib.closing(scans):  # on an error, the rest is cancelled while the client is open
        for _, scan in scans:
            schemas[scan.index] = scan.schema
            try:
                sample = keep_smallest(sample, scan.sample, sample_rows)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                check_unified(schemas, files)  # names the column and the two files that disagree
                raise
    raw_schema = _typed(check_unified(schemas, files))
    for note in _missing_columns(schemas, raw_schema, files):
        log(note)
    sample = finish_sample(sample, raw_schema)
    sample, _ = finite_or_null(parse_datetimes(pl.from_arrow(sample), config).to_arrow())
    schema = infer_schema(sample, config)
    for identifier in schema.direct_identifiers:
        log(identifier.describe())
    for note in assumptions.from_sample(sample, schema, config):
        log(note)
    sample = generalised_table(sample, schema.direct_identifiers)  # profiled as the clean data will hold them
    profile = profile_sample(sample, schema, config.transforms.max_categories)
    expectations = build_expectations(schema, profile, config.validation)
    if config.validation.suite:
        expectations = merge_suites(expectations, load_suite(config.validation.suite))
    write_json_atomic(work / "expectations.json", {"name": "synth-extract", "expectations": expectations})
    return schema, expectations


def _typed(schema: pa.Schema) -> pa.Schema:
    """``schema`` with text in place of Arrow's null type: a column no partition has a value in.

    A SQL query or a pandas-written Parquet file types such a column ``null``; kept as an
    empty text column, it reaches the synthetic data as it is (all missing), as it does
    from a CSV file, where Polars reads it as text. The log says so (:mod:`synth.assumptions`).
    """
    for i, f in enumerate(schema):
        if pa.types.is_null(f.type):
            schema = schema.set(i, f.with_type(pa.string()))
    return schema


def _missing_columns(schemas: dict[int, pa.Schema], unified: pa.Schema, files: dict[int, str]) -> list[str]:
    """A sentence for each column some partitions lack (their rows read it as missing)."""
    notes = []
    for name in unified.names:
        lacking = [index for index in sorted(schemas) if name not in schemas[index].names]
        if lacking:
            notes.append(
                f"column {name!r} is missing from {len(lacking)} of {len(schemas)} partitions (e.g. "
                f"{files[lacking[0]]}): read as missing there"
            )
    return notes


def _clean_all(
    client: Client, plan: CleanPlan, partitions: list[Partition], log: Log
) -> tuple[list[PartitionReport], dict[str, int]]:
    """Clean the partitions not yet clean under ``plan``; count repeated keys across all of them."""
    _reset_unless_same_plan(Path(plan.clean_dir), plan.version, plan.schema.entity_key)
    reports = {p.index: load_report(plan.clean_dir, p.index, plan.version) for p in partitions}
    todo = [p for p in partitions if reports[p.index] is None]
    if len(todo) < len(partitions):
        log(f"{len(partitions) - len(todo)} partitions already clean (earlier attempt); cleaning {len(todo)}")
    for _, report in iter_partitions(client, clean_partition, todo, plan, on_result=_progress(log, "cleaned")):
        reports[report.index] = report
        crash_point("preprocess.partition")
    duplicates = {
        column: sum(map_partitions(client, count_duplicates, _buckets(plan, column))) for column in plan.unique_columns
    }
    return [reports[p.index] for p in partitions], duplicates


def _clean_plan(
    schema: Schema,
    clean_dir: Path,
    config: PipelineConfig,
    expectations: list[dict],
    partitions: list[Partition],
    unique: tuple[str, ...],
    rows: int,
) -> CleanPlan:
    validate = _validated(len(partitions), config.validation.partitions, config.seed)
    first_rows = tuple(int(x) for x in np.concatenate([[0], np.cumsum([p.rows for p in partitions])[:-1]]))
    fields = {
        "schema": json.loads(schema.to_json()),
        "holdout_fraction": config.evaluation.holdout_fraction,
        "seed": config.seed,
        "expectations": expectations,
        "validate": sorted(validate),
        "unique": list(unique),
        "partitions": [[p.uri, list(p.row_groups)] for p in partitions],
        "code": code_version(),  # parts cleaned by other code are not reused
    }
    version = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return CleanPlan(
        schema=schema,
        clean_dir=str(clean_dir),
        holdout_fraction=config.evaluation.holdout_fraction,
        seed=config.seed,
        expectations=expectations,
        validate=frozenset(validate),
        unique_columns=unique,
        key_buckets=max(1, math.ceil(rows / KEY_BUCKET_ROWS)),
        first_rows=first_rows,
        version=version,
    )


def _validated(total: int, wanted: int | None, seed: int) -> set[int]:
    """All partitions, or a seeded sample of ``wanted`` of them."""
    if wanted is None or wanted >= total:
        return set(range(total))
    return {int(i) for i in np.random.default_rng([seed, 0x6A7E]).choice(total, size=wanted, replace=False)}


def _reset_unless_same_plan(clean_dir: Path, version: str, entity_key: str | None) -> None:
    """Start the clean dataset afresh unless it was begun under the same plan."""
    marker = clean_dir / PLAN
    if marker.is_file() and json.loads(marker.read_text()).get("version") == version:
        return
    shutil.rmtree(clean_dir, ignore_errors=True)
    write_json_atomic(marker, {"version": version, "entity_key": entity_key})


def _buckets(plan: CleanPlan, column: str) -> list[str]:
    return sorted(str(b) for b in (Path(plan.clean_dir) / "_keys" / column).glob("bucket-*"))


def _sum_counts(dicts) -> dict[str, int]:
    total: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            total[k] = total.get(k, 0) + v
    return total


def _progress(log: Log, verb: str, every: float = 5.0) -> Callable[[int, int], None]:
    last = [0.0]
    start = time.perf_counter()

    def report(done: int, total: int) -> None:
        now = time.perf_counter() - start
        if now - last[0] >= every or done == total:
            last[0] = now
            log(f"{verb} {done}/{total} partitions ({now:.0f}s)")

    return report
