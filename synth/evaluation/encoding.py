"""One numeric view of the tables under comparison, shared by every row-level check.

Numbers and datetimes become float64 (datetimes as seconds since the epoch, missing as
NaN); categories and booleans become integer codes shared by all the tables encoded
together (code 0 is "missing", so a missing value is a category of its own). The same
codes in every table make distances, classifiers and contingency tables comparable.
Identifier columns are never encoded: synthetic ids are fresh by design.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synth.config import ColumnKind
from synth.errors import SchemaError
from synth.schema import Schema

NUMERIC_KINDS = (ColumnKind.NUMERICAL, ColumnKind.DATETIME)
CATEGORICAL_KINDS = (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN)
MISSING = 0  # the code of a missing category


@dataclass(frozen=True)
class Layout:
    """Which columns are numbers and which are categories, and the categories' names.

    Attributes:
        numeric: numerical and datetime columns, in schema order.
        categorical: categorical and boolean columns, in schema order.
        levels: for each categorical column, the names of codes 1..k (0 is missing).
        datetimes: the numeric columns that are datetimes (seconds since the epoch).
    """

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    levels: tuple[tuple[str, ...], ...]
    datetimes: frozenset[str] = frozenset()

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def without(self, names: set[str] | list[str]) -> tuple[Layout, list[int], list[int]]:
        """This layout less ``names``, and the positions of the kept columns."""
        drop = set(names)
        keep_num = [i for i, c in enumerate(self.numeric) if c not in drop]
        keep_cat = [i for i, c in enumerate(self.categorical) if c not in drop]
        layout = Layout(
            numeric=tuple(self.numeric[i] for i in keep_num),
            categorical=tuple(self.categorical[i] for i in keep_cat),
            levels=tuple(self.levels[i] for i in keep_cat),
            datetimes=self.datetimes - drop,
        )
        return layout, keep_num, keep_cat


@dataclass(frozen=True)
class Encoded:
    """A table as two matrices.

    Attributes:
        numeric: ``(n, len(layout.numeric))`` float64, NaN where missing.
        codes: ``(n, len(layout.categorical))`` int32, 0 where missing.
    """

    numeric: np.ndarray
    codes: np.ndarray

    def __len__(self) -> int:
        return self.numeric.shape[0]

    def take(self, rows: np.ndarray) -> Encoded:
        return Encoded(self.numeric[rows], self.codes[rows])

    def select(self, numeric: list[int], categorical: list[int]) -> Encoded:
        return Encoded(self.numeric[:, numeric], self.codes[:, categorical])


def layout_columns(schema: Schema) -> tuple[list[str], list[str]]:
    """(numeric columns, categorical columns) of the schema; identifiers are left out."""
    numeric = [c.name for c in schema.columns if c.kind in NUMERIC_KINDS]
    categorical = [c.name for c in schema.columns if c.kind in CATEGORICAL_KINDS]
    return numeric, categorical


def encode(schema: Schema, *tables: pa.Table) -> tuple[Layout, list[Encoded]]:
    """Encode ``tables`` together, so a category has the same code in each.

    Raises:
        SchemaError: a table lacks a column of the schema.
    """
    numeric, categorical = layout_columns(schema)
    for index, table in enumerate(tables):
        missing = [c for c in numeric + categorical if c not in table.column_names]
        if missing:
            raise SchemaError(f"table {index + 1} of the comparison lacks columns {missing}")
    datetimes = frozenset(c for c in numeric if schema[c].kind is ColumnKind.DATETIME)
    numeric_parts = [
        np.column_stack([_as_float(t[c]) for c in numeric]) if numeric else np.empty((t.num_rows, 0))
        for t in tables
    ]
    levels, code_columns = [], []
    for name in categorical:
        names, codes = _shared_codes([t[name] for t in tables])
        levels.append(names)
        code_columns.append(codes)
    encoded = []
    for k, table in enumerate(tables):
        codes = (
            np.column_stack([column[k] for column in code_columns]).astype(np.int32)
            if categorical
            else np.empty((table.num_rows, 0), dtype=np.int32)
        )
        encoded.append(Encoded(numeric_parts[k].astype(np.float64, copy=False), codes))
    return Layout(tuple(numeric), tuple(categorical), tuple(levels), datetimes), encoded


def _as_float(column: pa.ChunkedArray) -> np.ndarray:
    # Unchecked casts: float64 rounds integers beyond 2**53 (a generator's out-of-range
    # timestamp, a long id-like count) and truncates sub-microsecond time; neither matters
    # to a comparison, and refusing the table would.
    dtype = column.type
    if pa.types.is_timestamp(dtype):
        micros = pc.cast(pc.cast(column, pa.timestamp("us", tz=dtype.tz), safe=False), pa.int64())
        return pc.divide(pc.cast(micros, pa.float64(), safe=False), 1e6).to_numpy(zero_copy_only=False)
    if pa.types.is_date(dtype):
        days = pc.cast(pc.cast(column, pa.date32()), pa.int32())
        return pc.multiply(pc.cast(days, pa.float64()), 86_400.0).to_numpy(zero_copy_only=False)
    if pa.types.is_boolean(dtype):
        column = pc.cast(column, pa.int8())
    return pc.cast(column, pa.float64(), safe=False).to_numpy(zero_copy_only=False)


def _shared_codes(columns: list[pa.ChunkedArray]) -> tuple[tuple[str, ...], list[np.ndarray]]:
    """Codes 1..k for the values of all ``columns`` together, 0 for nulls."""
    as_text = [pc.cast(c, pa.large_string()) for c in columns]
    joined = pa.chunked_array([chunk for c in as_text for chunk in c.chunks], type=pa.large_string())
    encoded = pc.dictionary_encode(joined.combine_chunks())
    codes = pc.fill_null(pc.add(pc.cast(encoded.indices, pa.int32()), 1), MISSING).to_numpy(zero_copy_only=False)
    names = tuple(encoded.dictionary.to_pylist())
    bounds = np.cumsum([0] + [len(c) for c in columns])
    return names, [codes[bounds[i] : bounds[i + 1]] for i in range(len(columns))]
