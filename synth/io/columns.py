"""Column names as extracts arrive: unnamed columns get a stable name, a written-out row index is dropped.

R's ``write.csv`` and pandas' ``DataFrame.to_csv`` write the row index as a first column
with an empty header (``,age,death,...`` or ``"","age",...``); read back, it is called
``""`` (Polars), ``Unnamed: 0`` (pandas), ``...1`` (readr) or ``rownames`` (Rdatasets), and
pandas' ``to_parquet`` stores a non-default index as ``__index_level_0__``. Such a column
holds row numbers, not data, so:

* a column with no name, or with one of those index names, whose values are integers
  increasing row by row (``0..n-1``, ``1..n``, or the index of a filtered table) in every
  file, is dropped as a row index (``source.row_index: keep`` keeps it);
* any other column with no name is called ``unnamed_<position>`` (0-based, as pandas
  counts), so configs, reports and the validation gate can name it.

Every decision is returned as a sentence for the run's log.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from synth.errors import SourceError

#: Headers that mean "no name": empty, pandas' and readr's placeholders, Polars' repeats of an empty header.
_NO_NAME = re.compile(r"^(\s*|Unnamed: \d+|\.\.\.\d+|_duplicated_\d+)$")
_EMPTY = re.compile(r"^(\s*|_duplicated_\d+)$")  # how Polars reads empty headers
#: Names tools give a row index they write out.
_INDEX_NAME = re.compile(r"^(rownames|row\.names|__index_level_\d+__)$")


@dataclass(frozen=True)
class ColumnNaming:
    """How an extract's columns are renamed and which are dropped as a row index (original names)."""

    renames: tuple[tuple[str, str], ...] = ()
    row_index: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.renames or self.row_index)

    def apply(self, table: pa.Table) -> pa.Table:
        """``table`` without its row-index columns and with its unnamed columns named."""
        if not self:
            return table
        table = table.drop_columns([c for c in self.row_index if c in table.column_names])
        mapping = dict(self.renames)
        return table.rename_columns([mapping.get(c, c) for c in table.column_names])

    def apply_lazy(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        """The same on a Polars lazy frame (streamed CSV staging)."""
        if not self:
            return frame
        return frame.drop(list(self.row_index)).rename(dict(self.renames))

    def original(self, names: Iterable[str]) -> list[str]:
        """The extract's names of the (renamed) columns ``names``."""
        back = {new: old for old, new in self.renames}
        return [back.get(name, name) for name in names]


def is_unnamed(name: str) -> bool:
    """Whether a header means "no name" (empty, ``Unnamed: 0``, ``...1``, a repeated empty header)."""
    return bool(_NO_NAME.match(name))


def check_unique_names(where: str, names: Sequence[str]) -> None:
    """Refuse two columns with one name: which one a config, a check or a report means would be a guess.

    Raises:
        SourceError: naming the columns' positions (counting from 0, as ``unnamed_<position>``) and the name.
    """
    seen: dict[str, list[int]] = {}
    for position, name in enumerate(names):
        if not is_unnamed(name):
            seen.setdefault(name.strip(), []).append(position)
    for name, positions in seen.items():
        if len(positions) > 1:
            raise SourceError(
                f"{where}: columns {', '.join(map(str, positions))} (counting from 0) are all named {name!r}; "
                "give each column its own name"
            )


def name_columns(names: Sequence[str], frames: Sequence[pl.LazyFrame], keep_row_index: bool = False) -> ColumnNaming:
    """Decide the naming of an extract's columns.

    Args:
        names: the columns as read (every file has them; the caller checks that).
        frames: one lazy frame per file, in row order; only candidate columns are read.
        keep_row_index: keep a row-index column (under a stated name) instead of dropping it.
    """
    candidates = [(position, name) for position, name in enumerate(names) if is_unnamed(name) or _INDEX_NAME.match(name)]
    if not candidates:
        return ColumnNaming()
    indexes = set() if keep_row_index else _row_indexes([name for _, name in candidates], frames)
    taken = set(names)
    renames, dropped, notes = [], [], []
    for position, name in candidates:
        header = f"column {position} ({'empty header' if _EMPTY.match(name) else f'header {name!r}'})"
        if name in indexes:
            dropped.append(name)
            notes.append(f"{header} holds row numbers (a row index written out with the data): dropped; "
                         "set source.row_index: keep to model it")
            continue
        if not is_unnamed(name):
            continue  # a named index column that holds data keeps its name
        stated = f"unnamed_{position}"
        while stated in taken:
            stated += "_"
        taken.add(stated)
        renames.append((name, stated))
        notes.append(f"{header} has no name: called it {stated!r}")
    return ColumnNaming(tuple(renames), tuple(dropped), tuple(notes))


def _row_indexes(candidates: list[str], frames: Sequence[pl.LazyFrame]) -> set[str]:
    """The candidates that hold integers increasing row by row in every file."""
    found = set(candidates)
    for frame in frames:
        schema = frame.collect_schema()
        found = {c for c in found if c in schema and schema[c].is_integer()}
        if not found:
            return found
        stats = frame.select(
            *(pl.col(c).null_count().alias(f"{c}\0nulls") for c in found),
            *(pl.col(c).diff().min().alias(f"{c}\0step") for c in found),
            *(pl.col(c).first().alias(f"{c}\0first") for c in found),
        ).collect().row(0, named=True)
        found = {c for c in found if _increasing(stats[f"{c}\0nulls"], stats[f"{c}\0step"], stats[f"{c}\0first"])}
    return found


def _increasing(nulls: int, smallest_step: int | None, first: int | None) -> bool:
    if nulls or first is None or first < 0:
        return False
    if smallest_step is None:  # one row
        return first in (0, 1)
    return smallest_step >= 1
