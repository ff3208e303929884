"""A table read in bounded batches: a Parquet dataset on disk or behind an fsspec URI, or a table in memory.

The evaluation compares synthetic data of any size with bounded real samples. It never
holds the synthetic table whole: it streams it once, batch by batch (copies, identifiers,
patient summaries), and gathers the seeded rows its sampling checks draw
(:meth:`TableScan.take`). Memory then follows ``batch_rows`` and the sample sizes, not the
number of synthetic rows.

Parquet is read through a PyArrow dataset: a file, a folder (files whose names start with
``.`` or ``_`` are left out, as the sampler's ``_sampling.json``), or a glob; a local path or
any URI fsspec opens (``s3://``, ``abfs://``, ``memory://``...; see :mod:`synth.io.uri`).
Files are read one row group at a time, so memory holds one row group and one batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from synth.config import PipelineConfig
from synth.errors import SourceError
from synth.holdout import unit_hash
from synth.io.sources import read_table, resolve_paths
from synth.io.uri import PARQUET_SUFFIXES, file_format, filesystem, format_from_names, is_remote, list_files, local_path

BATCH_ROWS = 65_536


class TableScan:
    """Batches of a Parquet dataset (or of a table already in memory).

    Args:
        data: a table, or a Parquet file, folder or glob (a path or an fsspec URI).
        batch_rows: the most rows a batch holds.

    Raises:
        SourceError: nothing Parquet is found there, or it cannot be read.
    """

    def __init__(self, data: str | Path | pa.Table, batch_rows: int = BATCH_ROWS):
        self.batch_rows = batch_rows
        self._table = data if isinstance(data, pa.Table) else None
        self._dataset = None if self._table is not None else _dataset(str(data))
        self.source = "a table in memory" if self._table is not None else str(data)

    @property
    def schema(self) -> pa.Schema:
        return self._table.schema if self._table is not None else self._dataset.schema

    @property
    def column_names(self) -> list[str]:
        return list(self.schema.names)

    @property
    def num_rows(self) -> int:
        """The row count (from the Parquet footers: nothing is decoded)."""
        return self._table.num_rows if self._table is not None else self._dataset.count_rows()

    def batches(self, columns: list[str] | None = None) -> Iterator[pa.Table]:
        """The rows in order, ``batch_rows`` at most at a time (``columns`` only, when given)."""
        if self._table is not None:
            table = self._table.select(columns) if columns is not None else self._table
            for start in range(0, table.num_rows, self.batch_rows):
                yield table.slice(start, self.batch_rows)
            return
        schema = self.schema if columns is None else pa.schema([self.schema.field(c) for c in columns])
        try:
            # File by file, row group by row group: PyArrow's dataset scanner reads ahead up to
            # tens of megabytes whatever its read-ahead settings, a Parquet file reader does not.
            for fragment in self._dataset.get_fragments():
                with self._dataset.filesystem.open_input_file(fragment.path) as handle:
                    for batch in pq.ParquetFile(handle).iter_batches(self.batch_rows, columns=schema.names):
                        if batch.num_rows:
                            table = pa.Table.from_batches([batch])
                            yield table if table.schema == schema else table.cast(schema)
        except (pa.ArrowInvalid, OSError) as exc:
            raise SourceError(f"cannot read Parquet {self.source}: {str(exc).splitlines()[0]}") from None

    def take(self, positions: np.ndarray, columns: list[str] | None = None) -> pa.Table:
        """The rows at ``positions`` (sorted, distinct), in that order, gathered batch by batch."""
        positions = np.asarray(positions, dtype=np.int64)
        if self._table is not None:
            table = self._table.select(columns) if columns is not None else self._table
            return table.take(pa.array(positions))
        picked, offset = [], 0
        for batch in self.batches(columns):
            end = offset + batch.num_rows
            lo, hi = np.searchsorted(positions, [offset, end])
            if hi > lo:
                picked.append(batch.take(pa.array(positions[lo:hi] - offset)))
            offset = end
            if hi == len(positions):
                break
        if not picked:
            return self.schema.empty_table() if columns is None else self.schema.empty_table().select(columns)
        return pa.concat_tables(picked).combine_chunks()


def _dataset(source: str) -> ds.Dataset:
    """A PyArrow dataset over a Parquet file, folder or glob, local or remote."""
    try:
        if not is_remote(source) and not any(ch in source for ch in "*?["):
            path = local_path(source)
            if not path.exists():
                raise SourceError(f"source not found: {path}")
            return ds.dataset(str(path), format="parquet")
        files = [f.uri for f in list_files(source) if f.name.lower().endswith(PARQUET_SUFFIXES)]
        if not files:
            raise SourceError(f"{source}: no .parquet files")
        if not is_remote(source):
            return ds.dataset([str(local_path(f)) for f in files], format="parquet")
        fs, _ = filesystem(source)
        return ds.dataset([filesystem(f)[1] for f in files], filesystem=fs, format="parquet")
    except (pa.ArrowInvalid, OSError) as exc:
        raise SourceError(f"cannot read Parquet {source}: {str(exc).splitlines()[0]}") from None


def open_table(source: str | Path, config: PipelineConfig) -> TableScan:
    """A table to stream: Parquet batch by batch; CSV read whole (Polars infers its types over the whole file).

    Raises:
        SourceError: nothing is found there, or it cannot be read.
    """
    if is_remote(source):
        fmt = file_format(list_files(str(source)), config.source.format)
    else:
        paths = resolve_paths(source)
        fmt = format_from_names([p.name for p in paths], str(paths[0]), config.source.format)
    return TableScan(str(source)) if fmt == "parquet" else TableScan(read_table(source, config))


def read_sample(
    source: str | Path, config: PipelineConfig, max_rows: int, seed: int, key: str | None = None,
    columns: list[str] | None = None,
) -> pa.Table:
    """At most ``max_rows`` rows of a table: all of it, or a seeded sample of whole patients (by ``key``) or rows.

    A Parquet table larger than ``max_rows`` is streamed and only the sample is kept; a CSV
    is read whole first.
    """
    scan = open_table(source, config)
    if scan.num_rows <= max_rows:
        return read_table(source, config, columns=columns) if scan.source != "a table in memory" else (
            scan.take(np.arange(scan.num_rows), columns))
    wanted = None if columns is None else (columns if key is None or key in columns else [*columns, key])
    chunks, drawn = [], 0
    rng = np.random.default_rng([seed, _SAMPLE_STREAM])
    for batch in scan.batches(wanted):
        draw = unit_hash(batch[key], [seed, _SAMPLE_STREAM]) if key is not None else rng.random(batch.num_rows)
        chunks.append((batch.select(columns) if columns is not None else batch, draw))
        drawn += batch.num_rows
        if len(chunks) >= 16:  # keep memory to the sample: drop rows that can no longer make it
            chunks = [keep_lowest(chunks, scan.num_rows, max_rows, final=False)]
    return keep_lowest(chunks, scan.num_rows, max_rows)[0]


def keep_lowest(chunks: list[tuple[pa.Table, np.ndarray]], total: int, max_rows: int,
                final: bool = True) -> tuple[pa.Table, np.ndarray]:
    """The rows whose seeded draw is among the ``max_rows`` lowest of ``total`` (a uniform sample).

    Rows are first kept below a slightly generous threshold, so a partial result holds
    about ``max_rows`` rows whatever came before; the final cut keeps exactly those below
    the draw that would make ``max_rows``. Draws shared by a patient's rows keep or drop
    the patient whole.
    """
    threshold = min(1.0, max_rows / total * 1.05 + 1_000 / total)
    kept = [(table.filter(pa.array(draw < threshold)), draw[draw < threshold]) for table, draw in chunks]
    sample, draws = pa.concat_tables([t for t, _ in kept]), np.concatenate([d for _, d in kept])
    if not final or len(draws) <= max_rows:
        return sample, draws
    cutoff = np.partition(draws, max_rows)[max_rows]  # the smallest draw left out
    return sample.filter(pa.array(draws < cutoff)), draws[draws < cutoff]


_SAMPLE_STREAM = 0x5A3F
