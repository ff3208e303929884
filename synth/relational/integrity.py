"""Referential integrity of a relational extract: orphans, duplicate and missing keys.

Two ways to the same checks:

* :func:`check_integrity` counts them with Arrow compute kernels (``is_in``,
  ``count_distinct``), for the model and the evaluation;
* :func:`table_expectations` states them as Great Expectations 1.x expectations for one
  table, in the form :mod:`synth.expectations` builds and runs (``{"type", "kwargs"}``), so
  they join that table's suite in the gate. GX has no cross-table expectation, so "every
  foreign key value is a key of the parent" is ``expect_column_values_to_be_in_set``
  with the parent's key values as the set.

A null foreign key is counted apart from an orphan: it points nowhere rather than at a
missing parent (the model refuses both, since every generated child has a parent).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synth.errors import SchemaError
from synth.expectations import UNIQUE, Outcome, validate_table
from synth.relational.schema import Relation, RelationalSchema

IN_SET = "expect_column_values_to_be_in_set"
NOT_NULL = "expect_column_values_to_not_be_null"


@dataclass(frozen=True)
class KeyCounts:
    """Problems of one table's primary key."""

    table: str
    key: str
    duplicates: int  # rows whose non-null key another row already has
    nulls: int


@dataclass(frozen=True)
class LinkCounts:
    """Problems of one foreign key."""

    relation: str
    orphans: int  # non-null values with no parent row
    nulls: int
    mismatches: int = 0  # an ancestor's key that is not the one up the chain of parents


@dataclass(frozen=True)
class IntegrityReport:
    """Every key problem of an extract, as counts."""

    keys: tuple[KeyCounts, ...]
    links: tuple[LinkCounts, ...]

    @property
    def problems(self) -> int:
        """Total count of duplicate keys, null keys, orphans and null foreign keys."""
        links = sum(link.orphans + link.nulls + link.mismatches for link in self.links)
        return sum(k.duplicates + k.nulls for k in self.keys) + links

    def orphans(self) -> dict[str, int]:
        return {link.relation: link.orphans for link in self.links}

    def to_dict(self) -> dict:
        return {"keys": [asdict(k) for k in self.keys], "links": [asdict(link) for link in self.links]}


def check_integrity(tables: dict[str, pa.Table], schema: RelationalSchema) -> IntegrityReport:
    """Count duplicate/null primary keys and orphan/null foreign keys of every table."""
    keys = tuple(
        key_counts(name, tables[name], key) for name in schema.order if (key := schema.primary_keys[name]) is not None
    )
    links = [link_counts(r, tables[r.child], tables[r.parent]) for r in schema.relations]
    for shortcut in schema.shortcuts:
        counts = link_counts(shortcut, tables[shortcut.child], tables[shortcut.parent])
        links.append(replace(counts, mismatches=chain_mismatches(tables, schema, shortcut)))
    return IntegrityReport(keys, tuple(links))


def key_counts(name: str, table: pa.Table, key: str) -> KeyCounts:
    values = table[key]
    present = len(values) - values.null_count
    return KeyCounts(name, key, present - pc.count_distinct(values, mode="only_valid").as_py(), values.null_count)


def link_counts(relation: Relation, child: pa.Table, parent: pa.Table) -> LinkCounts:
    values = child[relation.column]
    found = pc.is_in(values, value_set=parent[relation.key].combine_chunks(), skip_nulls=True)
    orphans = pc.sum(pc.and_(pc.is_valid(values), pc.invert(found))).as_py() or 0  # a null is counted apart
    return LinkCounts(str(relation), int(orphans), values.null_count)


def chain_mismatches(tables: dict[str, pa.Table], schema: RelationalSchema, shortcut: Relation) -> int:
    """Rows whose ancestor key (``shortcut``) is not the one found up the chain of parents.

    Rows whose chain breaks (an orphan on the way) and null keys are counted elsewhere.
    """
    child = tables[shortcut.child]
    rows = np.arange(child.num_rows)  # each child row's row in the table reached so far (-1: broken)
    for relation in schema.chain(shortcut.child, shortcut.parent):
        values = tables[relation.child][relation.column].take(pa.array(np.maximum(rows, 0)))
        index = pc.index_in(values, value_set=tables[relation.parent][relation.key].combine_chunks())
        rows = np.where(rows >= 0, pc.fill_null(index, -1).to_numpy(zero_copy_only=False), -1)
    whole = rows >= 0
    chained = tables[shortcut.parent][shortcut.key].take(pa.array(rows[whole]))
    carried = child[shortcut.column].take(pa.array(np.flatnonzero(whole)))
    same = pc.fill_null(pc.equal(pc.cast(carried, chained.type), chained), True)
    return int(pc.sum(pc.invert(same)).as_py() or 0)


def table_expectations(name: str, tables: dict[str, pa.Table], schema: RelationalSchema) -> list[dict]:
    """The key checks of table ``name`` as GX expectations (see the module docstring).

    Its primary key: not null, unique. Its foreign keys (the parent's, and any ancestor's
    it carries): not null, every value in that table's key set (as it is in ``tables``).
    That an ancestor's key agrees with the chain of parents spans tables: only
    :func:`check_integrity` counts it.
    """
    built = []
    key = schema.primary_keys[name]
    if key is not None:
        built += [_expect(NOT_NULL, column=key), _expect(UNIQUE, column=key)]
    parent = schema.parent_relation(name)
    for relation in ([parent] if parent else []) + schema.shortcuts_of(name):
        parent_keys = pc.unique(tables[relation.parent][relation.key].drop_null()).to_pylist()
        built.append(_expect(NOT_NULL, column=relation.column))
        built.append(_expect(IN_SET, column=relation.column, value_set=parent_keys))
    return built


def _expect(kind: str, **kwargs) -> dict:
    return {"type": kind, "kwargs": kwargs}


# -- the Great Expectations gate -----------------------------------------------------------------
class IntegrityError(SchemaError):
    """The extract's keys are not intact (orphans, duplicate or null keys); nothing was trained."""


def validate_integrity(tables: dict[str, pa.Table], schema: RelationalSchema) -> dict[str, list[Outcome]]:
    """Validate each table's key expectations (:func:`table_expectations`) with GX, one validation per table.

    Returns:
        ``{table: outcomes}``, counts only (GX's full results, which quote values, are dropped).
    """
    return {name: validate_table(tables[name], table_expectations(name, tables, schema))[0] for name in schema.order}


def integrity_problems(
    outcomes: dict[str, list[Outcome]], tables: dict[str, pa.Table], schema: RelationalSchema
) -> list[str]:
    """One sentence per failed key expectation (table, column, count), then each chain mismatch."""
    targets = {(r.child, r.column): f"{r.parent}.{r.key}" for r in schema.relations + schema.shortcuts}
    said = []
    for name, found in outcomes.items():
        for outcome in found:
            if outcome.success:
                continue
            where, n = f"{name}.{outcome.column}", outcome.unexpected_count
            if outcome.expectation == IN_SET:
                said.append(f"{where}: {_rows(n)} orphan (values not found in {targets[(name, outcome.column)]})")
            elif outcome.expectation == UNIQUE:
                said.append(f"{where}: {_rows(n)} sharing a key with another row (duplicate keys)")
            elif outcome.expectation == NOT_NULL:
                said.append(f"{where}: {_rows(n)} with a null key")
            else:  # a column the table lacks
                said.append(f"{where}: {outcome.expectation} failed ({outcome.detail or 'missing'})")
    for link in check_integrity(tables, schema).links:
        if link.mismatches:
            said.append(f"{link.relation}: {link.mismatches:,} rows carry an ancestor's key that is not the one up "
                        "the chain of parents")
    return said


def _rows(n: int) -> str:
    return f"{n:,} row" + ("" if n == 1 else "s")
