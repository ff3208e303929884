"""Cutting an extract into partitions that workers read independently.

* Parquet files (a file, a folder or a glob, local or by URI): each file's row groups are
  grouped into partitions of about ``partition_rows`` rows; a row group is never split.
* CSV files are first streamed by Polars into Parquet parts of ``partition_rows`` rows in
  the work folder (whole-file type inference, as :func:`synth.io.sources.read_table`).
* A ``sql:`` source is streamed through a server-side cursor into Parquet parts.

Partition *k* is always the same rows in the same order, so everything seeded per
partition (samples, holdout for tables without a patient key) is reproducible.

Unnamed columns are named and a written-out row index is dropped
(:mod:`synth.io.columns`): while staging CSV, and as each Parquet partition is read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from synth.config import ColumnKind, PipelineConfig, SourceOptions
from synth.errors import SourceError
from synth.io import sql
from synth.io.atomic import TMP_PREFIX, remove_stale_temporaries, write_parquet_atomic, write_refused
from synth.io.columns import ColumnNaming, check_unique_names, name_columns
from synth.io.csv_files import explain_failure, inspect_csv, needs_reencoding, polars_encoding, reencode_to_file
from synth.io.faults import read_failure, storage_error, transient_fault
from synth.io.uri import DataFile, file_format, files_fingerprint, filesystem, is_remote, is_sql, list_files

RAW_PART = "raw-{:05d}.parquet"


@dataclass(frozen=True)
class Partition:
    """One unit of parallel work: some row groups of one Parquet file."""

    index: int
    uri: str
    row_groups: tuple[int, ...]
    rows: int
    naming: ColumnNaming = ColumnNaming()


def plan_source(
    source: str, config: PipelineConfig, raw_dir: Path, log: Callable[[str], None] = print
) -> list[Partition]:
    """The partitions of ``source``, staging CSV and SQL sources as Parquet under ``raw_dir`` first."""
    if is_sql(source):
        return plan_files(_stage_sql(source, config, raw_dir, log), config.preprocess.partition_rows)
    files = list_files(source)
    if file_format(files, config.source.format) == "csv":
        return plan_files(_stage_csv(files, config, raw_dir, log), config.preprocess.partition_rows)
    uris = [f.uri for f in files]
    try:
        naming = _naming([_lazy(u) for u in uris], config, log)
    except (pl.exceptions.PolarsError, pa.ArrowInvalid, OSError) as exc:
        if isinstance(exc, pl.exceptions.PolarsError) and transient_fault(exc) is None:
            for uri in uris:  # Polars refuses two columns with one name: say which
                check_unique_names(uri, _metadata(uri).schema.to_arrow_schema().names)
        raise storage_error(exc, f"cannot read Parquet {uris[0]}") from None
    return plan_files(uris, config.preprocess.partition_rows, naming)


def source_fingerprint(source: str, config: PipelineConfig) -> str:
    """A hash that changes when the extract does: file names, sizes and versions, or query and row count."""
    if is_sql(source):
        engine = sql.engine_from_env(config.source.sql_url_env)
        try:
            return sql.query_fingerprint(engine, sql.query_of(source))
        finally:
            engine.dispose()
    return files_fingerprint(list_files(source))


def plan_files(uris: list[str], partition_rows: int, naming: ColumnNaming = ColumnNaming()) -> list[Partition]:
    """Group each Parquet file's row groups into partitions of about ``partition_rows`` rows (read with ``naming``)."""
    partitions: list[Partition] = []
    for uri in uris:
        metadata = _metadata(uri)
        groups: list[int] = []
        rows = 0
        for g in range(metadata.num_row_groups):
            groups.append(g)
            rows += metadata.row_group(g).num_rows
            if rows >= partition_rows:
                partitions.append(Partition(len(partitions), uri, tuple(groups), rows, naming))
                groups, rows = [], 0
        if groups or metadata.num_row_groups == 0:
            partitions.append(Partition(len(partitions), uri, tuple(groups), rows, naming))
    if not any(p.rows for p in partitions):
        raise SourceError(f"{uris[0]}: the file has no rows" if len(uris) == 1 else
                          f"none of the extract's {len(uris)} files has a row (e.g. {uris[0]})")
    return partitions


def read_partition(partition: Partition, columns: list[str] | None = None) -> pa.Table:
    """The partition's rows (only ``columns`` that the file has, when given), columns named as planned."""
    try:
        file = _open(partition.uri)
        available = set(file.schema_arrow.names)
        wanted = None if columns is None else [c for c in partition.naming.original(columns) if c in available]
        return partition.naming.apply(file.read_row_groups(list(partition.row_groups), columns=wanted))
    except (pa.ArrowInvalid, OSError) as exc:
        raise storage_error(exc, f"cannot read Parquet {partition.uri}") from None


def _metadata(uri: str) -> pq.FileMetaData:
    try:
        return _open(uri).metadata
    except (pa.ArrowInvalid, OSError) as exc:
        raise storage_error(exc, f"cannot read Parquet {uri}") from None


def _open(uri: str) -> pq.ParquetFile:
    if is_remote(uri):
        fs, path = filesystem(uri)
        return pq.ParquetFile(fs.open(path, "rb"))
    return pq.ParquetFile(uri.removeprefix("file://"), memory_map=True)


def _lazy(uri: str) -> pl.LazyFrame:
    """A Polars scan of one Parquet file, local or remote (columns are read only when asked for)."""
    if is_remote(uri):
        fs, path = filesystem(uri)
        return pl.scan_pyarrow_dataset(ds.dataset(path, filesystem=fs, format="parquet"))
    return pl.scan_parquet(uri.removeprefix("file://"))


def _naming(files: list[pl.LazyFrame], config: PipelineConfig, log: Callable[[str], None]) -> ColumnNaming:
    """How the files' columns are named: decided on all of them at once, so every part agrees."""
    naming = name_columns(files[0].collect_schema().names(), files, config.source.row_index == "keep")
    for note in naming.notes:
        log(note)
    return naming


def _stage_csv(files: list[DataFile], config: PipelineConfig, raw_dir: Path, log: Callable[[str], None]) -> list[str]:
    """Stream CSV files into Parquet parts of ``partition_rows`` rows (bounded memory)."""
    if _staged(raw_dir):
        return _staged(raw_dir)
    source = config.source
    text_columns = {name: pl.String for name, col in config.columns.items() if col.kind is ColumnKind.IDENTIFIER}
    _clear(raw_dir)
    layouts = [inspect_csv(f.uri, source) for f in files]
    for note in dict.fromkeys(layout.note(f.uri) for f, layout in zip(files, layouts, strict=True)):
        if note:
            log(note)
    readable = [_utf8(f.uri, source, raw_dir / f"{TMP_PREFIX}utf8-{n:05d}.csv") for n, f in enumerate(files)]

    def scan(n: int) -> pl.LazyFrame:
        return pl.scan_csv(
            readable[n],
            separator=layouts[n].separator,
            null_values=source.na_values or None,
            infer_schema_length=None,
            schema_overrides=text_columns or None,
            encoding=polars_encoding(source),
        )

    try:
        naming = _naming([scan(n) for n in range(len(files))], config, log)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise read_failure(exc, f"cannot read CSV {files[0].uri}", explain_failure(files[0].uri, source, layouts[0], exc)) from None
    staged = []
    for n, file in enumerate(files):
        target = raw_dir / f".tmp-csv-{n:05d}"
        try:
            naming.apply_lazy(scan(n)).sink_parquet(
                pl.PartitionBy(target, max_rows_per_file=config.preprocess.partition_rows), mkdir=True
            )
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise write_refused(exc, raw_dir) or read_failure(
                exc, f"cannot read CSV {file.uri}", explain_failure(file.uri, source, layouts[n], exc)
            ) from None
        for k, part in enumerate(sorted(target.glob("*.parquet"))):
            final = raw_dir / f"csv-{n:05d}-{k:05d}.parquet"
            part.rename(final)
            staged.append(str(final))
        target.rmdir()
    remove_stale_temporaries(raw_dir)  # the UTF-8 copies
    log(f"staged {len(files)} CSV file(s) as {len(staged)} Parquet part(s)")
    (raw_dir / "_SUCCESS").touch()
    return staged


def _utf8(uri: str, source: SourceOptions, copy: Path) -> str:
    """``uri`` itself, or a UTF-8 copy of it in the work folder when its encoding is one Polars cannot read."""
    return str(reencode_to_file(uri, source.encoding, copy)) if needs_reencoding(source) else uri


def _stage_sql(source: str, config: PipelineConfig, raw_dir: Path, log: Callable[[str], None]) -> list[str]:
    """Stream a SQL query into Parquet parts (one server-side cursor, one batch in memory)."""
    if _staged(raw_dir):
        return _staged(raw_dir)
    _clear(raw_dir)
    engine = sql.engine_from_env(config.source.sql_url_env)
    staged = []
    try:
        for k, batch in enumerate(sql.read_batches(engine, sql.query_of(source), config.preprocess.partition_rows)):
            staged.append(str(write_parquet_atomic(raw_dir / RAW_PART.format(k), batch)))
    finally:
        engine.dispose()
    if not staged:
        raise SourceError(f"the SQL source returned no rows: {source[:80]}")
    log(f"staged the SQL query as {len(staged)} Parquet part(s)")
    (raw_dir / "_SUCCESS").touch()
    return staged


def _staged(raw_dir: Path) -> list[str]:
    """Parts staged by an earlier, finished attempt (the work folder is keyed by the data)."""
    if not (raw_dir / "_SUCCESS").is_file():
        return []
    return sorted(str(p) for p in raw_dir.glob("*.parquet"))


def _clear(raw_dir: Path) -> None:
    """Empty ``raw_dir`` of an unfinished attempt's parts."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(raw_dir)
    for old in raw_dir.glob("*.parquet"):
        old.unlink()
