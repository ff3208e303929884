"""What a worker does with one partition: pure functions of a partition and a plan.

Two passes. The *scan* reads a partition and returns its Arrow schema, its row count and
its contribution to the bounded sample: every row gets a seeded random key and the
partition returns its ``k`` smallest, so the ``k`` smallest over all partitions are a
uniform sample of the extract, whatever the partitioning, in ``k`` rows per partition.

The *clean* pass, once the schema is known, conforms the partition to it (dates parsed,
types cast, generalised identifiers such as dates of birth generalised), validates it
with the expectation suite, splits it into training and holdout rows, writes both as
Parquet, hashes unique keys into buckets for the cross-partition duplicate count, and
returns per-column statistics. Its report is written last, so a
partition with a report is complete and a rerun skips it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from synth.config import ColumnKind
from synth.errors import SchemaError
from synth.expectations import ExpectationCrashed, Outcome, validate_table
from synth.holdout import split_holdout
from synth.io.atomic import atomic_path, write_json_atomic, write_parquet_atomic
from synth.pii.rules import generalised_table
from synth.preprocess.partitions import Partition, read_partition
from synth.schema import ColumnSpec, Schema

SAMPLE_KEY = "__synth_sample_key"
PART = "part-{:05d}.parquet"
REPORT = "part-{:05d}.json"
MAX_COUNTED_CATEGORIES = 1_000
_SAMPLE_STREAM = 0x5A3B1E
_KEY_HASH_SEED = 0x6B6579


# -- pass 1: scan ---------------------------------------------------------------------------
@dataclass
class Scan:
    """A partition's Arrow schema, size and bounded-sample contribution."""

    index: int
    rows: int
    schema: pa.Schema
    sample: pa.Table


def scan_partition(partition: Partition, drop: list[str], sample_rows: int, seed: int) -> Scan:
    """Read a partition (less the ``drop`` columns); keep its ``sample_rows`` rows with the smallest seeded keys."""
    table = read_partition(partition)
    table = table.drop_columns([c for c in drop if c in table.column_names])
    keys = np.random.default_rng([seed, _SAMPLE_STREAM, partition.index]).random(table.num_rows)
    if table.num_rows > sample_rows:
        keep = np.sort(np.argpartition(keys, sample_rows)[:sample_rows])
        table, keys = table.take(pa.array(keep)), keys[keep]
    schema = table.schema.remove_metadata()
    return Scan(partition.index, partition.rows, schema, table.append_column(SAMPLE_KEY, pa.array(keys)))


def keep_smallest(running: pa.Table | None, incoming: pa.Table, sample_rows: int) -> pa.Table:
    """The ``sample_rows`` rows with the smallest keys of both (types promoted as needed).

    Folding each partition's contribution in as it arrives keeps at most twice the sample
    in memory, however many partitions there are.
    """
    merged = incoming if running is None else pa.concat_tables([running, incoming], promote_options="permissive")
    if merged.num_rows > sample_rows:
        merged = merged.take(pc.select_k_unstable(merged, sample_rows, [(SAMPLE_KEY, "ascending")]))
    return merged


def finish_sample(sample: pa.Table, schema: pa.Schema) -> pa.Table:
    """The sample in key order (the same whatever order partitions finished in), cast to ``schema``, keys dropped."""
    return _conform_to(sample.sort_by(SAMPLE_KEY), schema)


def merge_samples(samples: list[pa.Table], sample_rows: int, schema: pa.Schema) -> pa.Table:
    """The ``sample_rows`` rows with the smallest keys over all contributions, cast to ``schema``."""
    running = None
    for sample in samples:
        running = keep_smallest(running, sample, sample_rows)
    return finish_sample(running, schema)


def _conform_to(table: pa.Table, schema: pa.Schema) -> pa.Table:
    arrays = []
    for f in schema:
        if f.name in table.column_names:
            arrays.append(table[f.name].cast(f.type))
        else:
            arrays.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


# -- pass 2: clean --------------------------------------------------------------------------
@dataclass(frozen=True)
class CleanPlan:
    """Everything a worker needs to clean any partition (sent once per partition, small)."""

    schema: Schema
    clean_dir: str
    holdout_fraction: float
    seed: int
    expectations: list[dict]
    validate: frozenset[int]
    unique_columns: tuple[str, ...]
    key_buckets: int
    first_rows: tuple[int, ...]  # partition k's first row number in the extract
    version: str  # a hash of all of the above: reports of another plan are not reused


@dataclass
class PartitionReport:
    """What cleaning one partition found: counts and statistics, never row values."""

    index: int
    version: str
    rows: int
    train_rows: int
    holdout_rows: int
    stats: dict
    outcomes: list[Outcome] | None = None
    cast_failures: dict[str, int] = field(default_factory=dict)
    non_finite: dict[str, int] = field(default_factory=dict)  # NaN and infinities, now missing
    worker: str = ""  # host:pid of the process that cleaned it
    seconds: float = 0.0  # the worker's time on the partition: read, conform, validate, split, write
    validation_seconds: float = 0.0  # of which Great Expectations (building its frame included)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PartitionReport:
        outcomes = data.pop("outcomes")
        return cls(**data, outcomes=None if outcomes is None else [Outcome(**o) for o in outcomes])


def clean_partition(partition: Partition, plan: CleanPlan) -> PartitionReport:
    """Conform, validate, split and write one partition; returns (and saves) its report."""
    start = time.perf_counter()
    root = Path(plan.clean_dir)
    raw = read_partition(partition, plan.schema.names)
    # Validated after conforming: every column has its schema type (values that do not fit, dates
    # that do not parse, are nulls, counted as cast failures), so a value check never meets a type
    # it cannot handle. NaN and infinities are missing values too, counted apart: they are not errors.
    dated, date_failures = _parse_dates(raw, plan.schema)
    table, cast_failures = conform(dated, plan.schema)
    table, non_finite = finite_or_null(table)
    cast_failures = {k: cast_failures.get(k, 0) + date_failures.get(k, 0) for k in {*cast_failures, *date_failures}}
    # Generalised identifiers (a date of birth, a postcode) are stored generalised: nothing
    # downstream, training included, ever reads them at full precision.
    table = generalised_table(table, plan.schema.direct_identifiers)
    outcomes, validation_seconds = None, 0.0
    if partition.index in plan.validate:
        validation_start = time.perf_counter()
        try:
            outcomes, full = validate_table(table, plan.expectations)
        except ExpectationCrashed as crash:
            write_json_atomic(root / "_validation" / REPORT.format(partition.index), crash.result)
            raise
        validation_seconds = time.perf_counter() - validation_start
        write_json_atomic(root / "_validation" / REPORT.format(partition.index), full)
    train, holdout = split_holdout(
        table, plan.schema, plan.holdout_fraction, plan.seed, first_row=plan.first_rows[partition.index]
    )
    write_parquet_atomic(root / "train" / PART.format(partition.index), train)
    write_parquet_atomic(root / "holdout" / PART.format(partition.index), holdout)
    for column in plan.unique_columns:
        _write_key_buckets(table[column], root / "_keys" / column, partition.index, plan.key_buckets)
    report = PartitionReport(
        index=partition.index,
        version=plan.version,
        rows=table.num_rows,
        train_rows=train.num_rows,
        holdout_rows=holdout.num_rows,
        stats=column_stats(table, plan.schema),
        outcomes=outcomes,
        cast_failures=cast_failures,
        non_finite=non_finite,
        worker=f"{socket.gethostname()}:{os.getpid()}",
        seconds=time.perf_counter() - start,
        validation_seconds=validation_seconds,
    )
    write_json_atomic(root / "_parts" / REPORT.format(partition.index), report.to_dict())
    return report


def load_report(clean_dir: str | Path, index: int, version: str) -> PartitionReport | None:
    """The saved report of a partition cleaned under the same plan, if any."""
    path = Path(clean_dir) / "_parts" / REPORT.format(index)
    if not path.is_file():
        return None
    try:
        report = PartitionReport.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError, KeyError):
        return None
    return report if report.version == version else None


def conform(table: pa.Table, schema: Schema) -> tuple[pa.Table, dict[str, int]]:
    """Cast every schema column to its type; values that cannot be cast become nulls, counted."""
    arrays, failures = [], {}
    for spec in schema.columns:
        column = table[spec.name] if spec.name in table.column_names else pa.chunked_array([], pa.null())
        if len(column) != table.num_rows:
            column = pa.chunked_array([pa.nulls(table.num_rows)])
        cast = _cast(column, spec)
        lost = cast.null_count - column.null_count
        if lost > 0:
            failures[spec.name] = lost
        arrays.append(cast)
    return pa.Table.from_arrays(arrays, schema=schema.arrow_schema()), failures


def _cast(column: pa.ChunkedArray, spec: ColumnSpec) -> pa.ChunkedArray:
    target = spec.arrow
    if column.type == target:
        return column
    try:
        return column.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        series = pl.from_arrow(pa.chunked_array(column.chunks, column.type) if column.num_chunks else column)
        target_pl = pl.from_arrow(pa.nulls(0, target)).dtype
        return pa.chunked_array([series.cast(target_pl, strict=False).to_arrow()]).cast(target)


def _parse_dates(table: pa.Table, schema: Schema) -> tuple[pa.Table, dict[str, int]]:
    """Text columns the schema calls datetimes, parsed (declared format, else ISO 8601); failures counted."""
    failures = {}
    for spec in schema.of_kind(ColumnKind.DATETIME):
        if spec.name not in table.column_names:
            continue
        column = table[spec.name]
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        series = pl.from_arrow(column)
        parsed = series.str.to_datetime(spec.datetime_format, strict=False, time_unit="us")
        if parsed.null_count() > series.null_count():
            failures[spec.name] = parsed.null_count() - series.null_count()
        table = table.set_column(table.column_names.index(spec.name), spec.name, parsed.to_arrow())
    return table, failures


def finite_or_null(table: pa.Table) -> tuple[pa.Table, dict[str, int]]:
    """``table`` with NaN and infinities of its float columns made missing, and how many per column."""
    counts = {}
    for i, name in enumerate(table.column_names):
        column = table[name]
        if not pa.types.is_floating(column.type):
            continue
        odd = pc.sum(pc.invert(pc.is_finite(column))).as_py() or 0  # nulls count as neither
        if odd:
            counts[name] = odd
            table = table.set_column(i, name, pc.if_else(pc.is_finite(column), column, pa.scalar(None, column.type)))
    return table, counts


# -- statistics -----------------------------------------------------------------------------
def column_stats(table: pa.Table, schema: Schema) -> dict:
    """Per column: nulls; numeric min/max/sum/sum of squares; category counts (capped)."""
    stats = {}
    for spec in schema.columns:
        column = table[spec.name]
        entry: dict = {"nulls": column.null_count}
        if spec.kind is ColumnKind.NUMERICAL:
            values = pc.cast(column, pa.float64())
            values = pc.filter(values, pc.is_finite(values))
            if len(values):
                entry |= {
                    "min": pc.min(values).as_py(),
                    "max": pc.max(values).as_py(),
                    "sum": pc.sum(values).as_py(),
                    "sum_squares": pc.sum(pc.multiply(values, values)).as_py(),
                    "count": len(values),
                    "negative": pc.sum(pc.less(values, 0)).as_py(),
                }
        elif spec.kind is ColumnKind.DATETIME:
            bounds = pc.min_max(column)
            entry |= {k: (None if v.as_py() is None else str(v.as_py())) for k, v in bounds.items()}
        elif spec.kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
            counts = pc.value_counts(pc.drop_null(_plain(column)))
            values, n = counts.field("values").to_pylist(), counts.field("counts").to_pylist()
            entry["categories"] = {
                str(v): c for v, c in zip(values[:MAX_COUNTED_CATEGORIES], n[:MAX_COUNTED_CATEGORIES], strict=True)
            }
            entry["more_categories"] = len(values) > MAX_COUNTED_CATEGORIES
        stats[spec.name] = entry
    return stats


def merge_stats(parts: list[dict], schema: Schema) -> dict:
    """Statistics of the whole extract from those of its partitions."""
    merged = {}
    for spec in schema.columns:
        entries = [p[spec.name] for p in parts]
        entry: dict = {"nulls": sum(e["nulls"] for e in entries)}
        with_values = [e for e in entries if "min" in e and e["min"] is not None]
        if with_values:
            entry["min"] = min(e["min"] for e in with_values)
            entry["max"] = max(e["max"] for e in with_values)
        if spec.kind is ColumnKind.NUMERICAL and with_values:
            count = sum(e["count"] for e in with_values)
            mean = sum(e["sum"] for e in with_values) / count
            variance = max(sum(e["sum_squares"] for e in with_values) / count - mean * mean, 0.0)
            entry |= {"count": count, "mean": mean, "std": variance**0.5,
                      "negative": sum(e.get("negative", 0) for e in with_values)}
        if spec.kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
            counts: dict[str, int] = {}
            for e in entries:
                for value, n in e.get("categories", {}).items():
                    counts[value] = counts.get(value, 0) + n
            entry["categories"] = dict(sorted(counts.items(), key=lambda kv: -kv[1])[:MAX_COUNTED_CATEGORIES])
            entry["more_categories"] = (
                any(e.get("more_categories") for e in entries) or len(counts) > MAX_COUNTED_CATEGORIES
            )
        merged[spec.name] = entry
    return merged


# -- keys unique across partitions ------------------------------------------------------------
def _write_key_buckets(column: pa.ChunkedArray, folder: Path, index: int, buckets: int) -> None:
    """Hash a key column's values into ``buckets`` files, so each bucket is counted alone."""
    values = pl.from_arrow(pc.drop_null(column))
    if isinstance(values, pl.DataFrame):
        values = values.to_series()
    hashes = values.hash(seed=_KEY_HASH_SEED).to_numpy()
    bucket_of = hashes % np.uint64(buckets)
    for b in range(buckets):
        with atomic_path(folder / f"bucket-{b:04d}" / f"part-{index:05d}.npy") as tmp:
            with open(tmp, "wb") as out:
                np.save(out, hashes[bucket_of == b])


def count_duplicates(bucket: str) -> int:
    """Values that repeat another value of the bucket (hashes; 64-bit collisions are negligible)."""
    parts = [np.load(p, allow_pickle=False) for p in sorted(Path(bucket).glob("part-*.npy"))]
    hashes = np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64)
    return int(len(hashes) - len(np.unique(hashes)))


def _plain(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column


def check_unified(schemas: dict[int, pa.Schema], files: dict[int, str]) -> pa.Schema:
    """One Arrow schema for all partitions (nulls and narrower numbers promoted), or a clear error."""
    ordered = [schemas[index] for index in sorted(schemas)]
    try:
        return pa.unify_schemas(ordered, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        first: dict[str, tuple[int, pa.DataType]] = {}
        for index in sorted(schemas):
            for f in schemas[index]:
                if f.name in first and not _compatible(first[f.name][1], f.type):
                    seen, dtype = first[f.name]
                    raise SchemaError(
                        f"column {f.name!r} is {dtype} in {files[seen]} but {f.type} in {files[index]}; "
                        "make the partitions agree, or read the column as text"
                    ) from None
                first.setdefault(f.name, (index, f.type))
        raise


def _compatible(a: pa.DataType, b: pa.DataType) -> bool:
    try:
        pa.unify_schemas([pa.schema([("x", a)]), pa.schema([("x", b)])], promote_options="permissive")
        return True
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return False
