"""A relational release on disk: one folder of Parquet parts per table (``<folder>/<table>/part-*.parquet``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

from synth.io.atomic import write_parquet_atomic


def write_tables(tables: dict[str, pa.Table], folder: str | Path, chunk_rows: int) -> dict[str, int]:
    """Write each table as parts of at most ``chunk_rows`` rows under ``folder/<table>/`` (replacing what
    was there), atomically each.

    A table with no rows still gets one (empty) part, so its folder and columns exist.

    Returns:
        ``{table: rows written}``.
    """
    folder = Path(folder)
    for name, table in tables.items():
        # An earlier write's parts must not outlive it (a table that shrank would keep its old tail).
        shutil.rmtree(folder / name, ignore_errors=True)
        starts = range(0, max(table.num_rows, 1), chunk_rows)
        for part, start in enumerate(starts):
            write_parquet_atomic(folder / name / f"part-{part:05d}.parquet", table.slice(start, chunk_rows))
    return {name: table.num_rows for name, table in tables.items()}


def read_tables(folder: str | Path, names: list[str]) -> dict[str, pa.Table]:
    """The tables ``names`` from ``folder/<table>/part-*.parquet``."""
    folder = Path(folder)
    return {name: ds.dataset(sorted(str(p) for p in (folder / name).glob("part-*.parquet"))).to_table()
            for name in names}
