"""Read an extract into one Arrow table: CSV files, Parquet files, folders or globs of Parquet.

A source may be a local path or an fsspec URI (``s3://``, ``abfs://``...: :mod:`synth.io.uri`).

Polars reads CSV (whole-file type inference, so a code column that turns to text after
row 10,000 is still read as text); PyArrow datasets read Parquet with column pruning.
Columns the config declares as identifiers are read as text: ids are labels, not
numbers (the no-show ``PatientId`` looks like a float and must not be rounded). Unnamed
columns are named and a written-out row index is dropped (:mod:`synth.io.columns`).
"""

from __future__ import annotations

import glob
import re
from collections.abc import Callable
from pathlib import Path

import fsspec
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds

from synth.config import ColumnKind, PipelineConfig
from synth.errors import SourceError
from synth.io.columns import ColumnNaming, name_columns
from synth.io.csv_files import explain_failure, inspect_csv, needs_reencoding, polars_encoding, reencode_to_bytes
from synth.io.faults import read_failure, storage_error
from synth.io.uri import PARQUET_SUFFIXES, filesystem, format_from_names, is_remote, list_files

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")
_DATE_PROBE_ROWS = 1_000


def read_table(
    source: str | Path,
    config: PipelineConfig | None = None,
    columns: list[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> pa.Table:
    """Read the extract at ``source``.

    Args:
        source: a CSV or Parquet file, a folder of Parquet files, or a glob; a path or an fsspec URI.
        config: read options and column declarations.
        columns: read only these columns (Parquet prunes them on disk).
        log: told how unnamed columns were named and which row index was dropped.

    Raises:
        SourceError: the path does not exist, holds no data, or cannot be parsed.
        TransientError: the storage failed in a way that may pass (e.g. a network file system timed out).
    """
    config = config or PipelineConfig()
    fs = None
    if is_remote(source):
        files = list_files(str(source))
        fs = filesystem(str(source))[0]
        paths, names = [filesystem(f.uri)[1] for f in files], [f.name for f in files]
    else:
        paths = [str(p) for p in resolve_paths(source)]
        names = [Path(p).name for p in paths]
    fmt = format_from_names(names, paths[0], config.source.format)
    if fmt == "csv":
        table, naming = _read_csv([f.uri for f in files] if fs is not None else paths, config)
    else:
        table, naming = _read_parquet(paths, columns, keep_row_index=config.source.row_index == "keep", fs=fs)
    for note in naming.notes if log else ():
        log(f"{source}: {note}")
    if columns is not None and fmt == "csv":
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise SourceError(f"{source}: columns {missing} are not in the extract")
        table = table.select(columns)
    if table.num_columns == 0:
        raise SourceError(f"{source}: the extract has no columns")
    if table.num_rows == 0:
        raise SourceError(f"{source}: the extract has no rows")
    return table


def resolve_paths(source: str | Path) -> list[Path]:
    """Expand a file, folder or glob into the data files it names (sorted)."""
    text = str(source)
    if any(ch in text for ch in "*?["):
        paths = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        if not paths:
            raise SourceError(f"no files match {text}")
        return paths
    path = Path(text)
    if not path.exists():
        raise SourceError(f"source not found: {path}")
    if path.is_dir():
        paths = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(PARQUET_SUFFIXES))
        if not paths:
            raise SourceError(f"{path} is a folder with no .parquet files in it")
        return paths
    return [path]


def _read_parquet(
    paths: list[str], columns: list[str] | None, keep_row_index: bool, fs=None
) -> tuple[pa.Table, ColumnNaming]:
    try:
        dataset = ds.dataset(paths, format="parquet", filesystem=fs)
        scans = [pl.scan_parquet(p) if fs is None else pl.scan_pyarrow_dataset(ds.dataset(p, format="parquet", filesystem=fs))
                 for p in paths]
        naming = name_columns(dataset.schema.names, scans, keep_row_index)
        wanted = None if columns is None else naming.original(columns)
        if wanted is not None:
            missing = [c for c, w in zip(columns, wanted) if w not in dataset.schema.names]
            if missing:
                raise SourceError(f"{paths[0].rsplit('/', 1)[0]}: columns {missing} are not in the extract")
        return naming.apply(dataset.to_table(columns=wanted)), naming
    except (pa.ArrowInvalid, OSError, pl.exceptions.PolarsError) as exc:
        raise storage_error(exc, f"cannot read Parquet {paths[0]}") from None


def _read_csv(paths: list[str], config: PipelineConfig) -> tuple[pa.Table, ColumnNaming]:
    """Read CSV files (local paths or fsspec URIs), each checked by :func:`inspect_csv` first."""
    text_columns = {
        name: pl.String for name, col in config.columns.items() if col.kind is ColumnKind.IDENTIFIER
    }
    frames, notes = [], []
    for path in paths:
        layout = inspect_csv(str(path), config.source)
        notes.append(layout.note(str(path)))
        try:
            if needs_reencoding(config.source):
                data = reencode_to_bytes(path, config.source.encoding)
            elif is_remote(path):
                with fsspec.open(path, "rb", compression="infer") as remote:
                    data = remote.read()
            else:
                data = path
            frame = pl.read_csv(
                data,
                separator=layout.separator,
                null_values=config.source.na_values or None,
                infer_schema_length=None,
                schema_overrides=text_columns or None,
                encoding=polars_encoding(config.source),
            )
        except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as exc:
            raise read_failure(exc, f"cannot read CSV {path}", explain_failure(str(path), config.source, layout, exc)) from None
        if frame.width == 0 or frame.height == 0:
            raise SourceError(f"{path}: the file has a header ({frame.width} columns) but no rows")
        frames.append(frame)
    naming = name_columns(frames[0].columns, [f.lazy() for f in frames], config.source.row_index == "keep")
    naming = ColumnNaming(naming.renames, naming.row_index, tuple(n for n in notes if n) + naming.notes)
    frames = [parse_datetimes(naming.apply_lazy(f.lazy()).collect(), config) for f in frames]
    try:
        frame = pl.concat(frames, how="vertical_relaxed") if len(frames) > 1 else frames[0]
    except pl.exceptions.PolarsError as exc:
        raise SourceError(f"the CSV files under {paths[0].rsplit('/', 1)[0]} do not share one layout: "
                          f"{_first_line(exc)}") from None
    return frame.to_arrow().combine_chunks(), naming


def parse_datetimes(frame: pl.DataFrame, config: PipelineConfig) -> pl.DataFrame:
    """Turn text columns holding dates into datetimes (declared formats first, then ISO 8601).

    Parsed eagerly, column by column, so Polars infers each format and keeps time zones
    (``...Z`` becomes UTC). An undeclared column converts only if every value parses: a
    date column with a stray "unknown" stays text rather than losing values to nulls.
    """
    parsed = {}
    for name, dtype in frame.schema.items():
        if dtype != pl.String:
            continue
        declared = config.columns.get(name)
        fmt = declared.datetime_format if declared is not None else None
        if fmt is None:
            if declared is not None and declared.kind not in (None, ColumnKind.DATETIME):
                continue
            probe = frame[name].drop_nulls().head(_DATE_PROBE_ROWS)
            if not (len(probe) and all(_ISO_DATE.match(v) for v in probe.to_list())):
                continue
        try:
            parsed[name] = frame[name].str.to_datetime(fmt, time_unit="us", strict=True)
        except pl.exceptions.PolarsError:
            if declared is None or (fmt is None and declared.kind is not ColumnKind.DATETIME):
                continue  # undeclared: stays text (the run's log says why)
            failed = frame[name].str.to_datetime(fmt, time_unit="us", strict=False).null_count() - frame[name].null_count()
            what = f"do not match datetime_format {fmt!r}" if fmt else "are not valid ISO 8601 dates (e.g. 30 February)"
            raise SourceError(
                f"column {name!r}: {failed} of {len(frame) - frame[name].null_count()} values {what}; fix them, "
                "or list them under source.na_values to read them as missing"
            ) from None
    return frame.with_columns(**parsed) if parsed else frame


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
