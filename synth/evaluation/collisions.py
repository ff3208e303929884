"""Exact copies: synthetic rows identical to a real row, on the full data.

Definition: the number of synthetic rows whose values equal, column for column, those of
at least one real row, compared over the modelled columns (identifiers are fresh by
design and left out). Normalisation before comparing: floats rounded to
``FLOAT_DECIMALS`` decimals, datetimes compared as exact instants, text and categories
as exact strings, and a null equal only to a null. Computed with Polars' semi-join on
the normalised rows: a hash join that then compares the values themselves, so it is
hashing with exact verification of every candidate match (no false matches from hash
collisions), over every row of both tables.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from synth.config import ColumnKind
from synth.schema import Schema

FLOAT_DECIMALS = 9


def exact_collisions(real: pa.Table, synthetic: pa.Table | pl.LazyFrame, schema: Schema) -> dict:
    """Count of synthetic rows that copy a real row, and their share of the synthetic rows."""
    columns = [c.name for c in schema.columns if c.kind is not ColumnKind.IDENTIFIER]
    real_rows = _normalise(pl.from_arrow(real.select(columns)).lazy(), columns).unique()
    synthetic_lazy = synthetic if isinstance(synthetic, pl.LazyFrame) else pl.from_arrow(synthetic).lazy()
    synthetic_rows = _normalise(synthetic_lazy.select(columns), columns)
    copies = synthetic_rows.join(real_rows, on=columns, how="semi", nulls_equal=True).select(pl.len()).collect().item()
    total = synthetic_rows.select(pl.len()).collect().item()
    return {"exact_collisions": int(copies), "exact_collision_rate": copies / total if total else 0.0}


def _normalise(frame: pl.LazyFrame, columns: list[str]) -> pl.LazyFrame:
    schema = frame.collect_schema()
    return frame.with_columns(
        pl.col(name).round(FLOAT_DECIMALS) for name in columns if schema[name].is_float()
    )
