"""A relational extract's tables and keys: the config, its validation, the parent -> children tree.

The config names each table with its primary key and foreign keys, in the shape the
issue asks for::

    tables:
      patients: {source: patients.csv, primary_key: id}
      labs: {source: labs.csv, foreign_keys: {id: patients.id}}

:class:`RelationalConfig` is that mapping as a pydantic model (it can hang under the
pipeline config unchanged); :class:`RelationalSchema` is the validated tree the model
walks. The supported shape is a **tree**: one root table, every other table with exactly
one parent, each foreign key pointing at its parent's primary key. A table may also carry
the keys of its grandparents and above (MIMIC's ICUSTAYS has ``subject_id`` beside
``hadm_id``): these *shortcuts* are copied down the chain, never modelled. A table with
two parents that are not one above the other (a many-to-many link table) is refused with
a plain message: generating it would need both parents sampled jointly, which this
model does not do.

Keys the config leaves out can be inferred where names and values make them obvious
(:func:`infer_keys`): a primary key is a column named ``id`` or ``<table>_id`` that is
unique and never null; a foreign key is a column named exactly like another table's
primary key whose values (most of them: the rest are orphans, said so) exist there. Each
inference comes back as a sentence for the log.
"""

from __future__ import annotations

import graphlib
from dataclasses import dataclass
from typing import Annotated

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from synth.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableSpec(_Strict):
    """One table of a relational extract."""

    source: str | None = Field(default=None, description="CSV/Parquet file, folder, fsspec URI or `sql:` query")
    primary_key: str | None = Field(default=None, description="the column that names each row (unique, never null)")
    foreign_keys: dict[str, str] = Field(
        default_factory=dict, description="column -> 'parent_table.column' (the parent's primary key)"
    )
    max_rows_per_patient: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="with DP: rows one patient contributes to this table, a public bound (excess rows are dropped "
        "at random); default: entity.max_rows_per_entity",
    )

    @field_validator("foreign_keys")
    @classmethod
    def _dotted(cls, value: dict[str, str]) -> dict[str, str]:
        for column, target in value.items():
            table, dot, key = target.partition(".")
            if not (table and dot and key):
                raise ValueError(f"foreign key {column}: {target!r} must read 'table.column'")
        return value


class RelationalConfig(_Strict):
    """The ``tables:`` section of a relational extract's config."""

    tables: dict[str, TableSpec] = Field(min_length=1)


def parse_relational(data: dict, origin: str = "config") -> RelationalConfig:
    """Validate a ``{tables: ...}`` mapping, pydantic's report turned into one readable error."""
    try:
        return RelationalConfig.model_validate(data)
    except ValidationError as exc:
        where = lambda err: ".".join(str(p) for p in err["loc"]) or "(top level)"  # noqa: E731
        lines = [f"{where(e)}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()]
        raise ConfigError(f"{origin}: " + "; ".join(lines)) from None


@dataclass(frozen=True)
class Relation:
    """``child.column`` points at ``parent.key`` (the parent's primary key)."""

    parent: str
    key: str
    child: str
    column: str

    def __str__(self) -> str:
        return f"{self.child}.{self.column} -> {self.parent}.{self.key}"


@dataclass(frozen=True)
class RelationalSchema:
    """A validated tree of tables: primary keys, one relation per non-root table, topological order.

    Build it with :meth:`from_config`, which raises :class:`ConfigError` for anything the
    tree cannot hold.
    """

    primary_keys: dict[str, str | None]
    relations: tuple[Relation, ...]  # one per non-root table: the key of its parent
    order: tuple[str, ...]  # parents before children
    shortcuts: tuple[Relation, ...] = ()  # keys of a table's grandparents and above (ICUSTAYS' subject_id)

    @property
    def root(self) -> str:
        return self.order[0]

    def parent_relation(self, table: str) -> Relation | None:
        """The relation to ``table``'s parent (None for the root)."""
        return next((r for r in self.relations if r.child == table), None)

    def children(self, table: str) -> list[Relation]:
        """The relations from ``table`` to each of its child tables, in topological order."""
        rank = {name: i for i, name in enumerate(self.order)}
        return sorted((r for r in self.relations if r.parent == table), key=lambda r: rank[r.child])

    def shortcuts_of(self, table: str) -> list[Relation]:
        """The keys of ``table``'s ancestors above its parent that it carries."""
        return [r for r in self.shortcuts if r.child == table]

    def key_columns(self, table: str) -> list[str]:
        """The columns of ``table`` that are keys (generated fresh or copied from above, never modelled)."""
        keys = [self.primary_keys[table]] if self.primary_keys[table] else []
        relation = self.parent_relation(table)
        foreign = ([relation] if relation else []) + self.shortcuts_of(table)
        return keys + [r.column for r in foreign if r.column not in keys]

    def chain(self, table: str, ancestor: str) -> list[Relation]:
        """The relations from ``table`` up to ``ancestor``, nearest first."""
        out, name = [], table
        while name != ancestor:
            relation = self.parent_relation(name)
            out.append(relation)
            name = relation.parent
        return out

    @classmethod
    def from_config(cls, config: RelationalConfig, tables: dict[str, pa.Table] | None = None) -> RelationalSchema:
        """Validate ``config`` (and, given the tables, that every key column exists).

        Raises:
            ConfigError: an unknown table or column, a foreign key not aimed at a primary
                key, a table with two parents, a cycle, or not exactly one root table.
        """
        specs = config.tables
        if tables is not None:
            _check_columns(specs, tables)
        links = [
            _link(child, column, target, specs)
            for child, spec in specs.items()
            for column, target in spec.foreign_keys.items()
        ]
        graph = {name: {r.parent for r in links if r.child == name} for name in specs}
        try:
            order = _stable_order(graph, {name: i for i, name in enumerate(specs)})
        except graphlib.CycleError as exc:
            cycle = " -> ".join(exc.args[1])
            raise ConfigError(f"the foreign keys form a cycle ({cycle}); a relational extract must be a tree") from None
        ancestors: dict[str, set[str]] = {}
        for name in order:
            ancestors[name] = set().union(*({p} | ancestors[p] for p in graph[name]))
        relations, shortcuts = [], []
        for child in order:
            own = [r for r in links if r.child == child]
            if own:
                parent = _direct_parent(child, own, ancestors)
                relations.append(parent)
                shortcuts += [r for r in own if r is not parent]
        roots = [name for name in order if not graph[name]]
        if len(roots) != 1:
            raise ConfigError(
                f"a relational extract needs exactly one root table (one without a foreign key), found {roots}: "
                "link the others to it"
            )
        primary_keys = {n: s.primary_key for n, s in specs.items()}
        return cls(primary_keys, tuple(relations), tuple(order), tuple(shortcuts))


def _link(child: str, column: str, target: str, specs: dict[str, TableSpec]) -> Relation:
    """One declared foreign key, checked against the tables' primary keys."""
    parent, _, key = target.partition(".")
    if parent not in specs:
        raise ConfigError(f"table {child!r}: foreign key {column} -> {target}: no table named {parent!r}")
    if specs[parent].primary_key != key:
        declared = specs[parent].primary_key
        raise ConfigError(
            f"table {child!r}: foreign key {column} -> {target} must point at {parent!r}'s primary key"
            + (f" ({declared!r})" if declared else " (it declares none)")
        )
    return Relation(parent, key, child, column)


def _direct_parent(child: str, own: list[Relation], ancestors: dict[str, set[str]]) -> Relation:
    """The foreign key to ``child``'s parent: the one whose table has every other target above it.

    Raises:
        ConfigError: the targets are not on one line of ancestors (two parents), or two keys
            point at the same table.
    """
    direct = [r for r in own if all(o.parent == r.parent or o.parent in ancestors[r.parent] for o in own)]
    if len(direct) == 1:
        return direct[0]
    targets = ", ".join(f"{r.column} -> {r.parent}.{r.key}" for r in own)
    raise ConfigError(
        f"table {child!r} has foreign keys to tables that are not one above the other ({targets}); a table with two "
        "parents is not supported: keep the key of its direct parent (keys of that parent's ancestors may stay) and "
        "drop the others, or declare them as ordinary columns"
    )


def _stable_order(graph: dict[str, set[str]], position: dict[str, int]) -> list[str]:
    """Parents before children, ties in the config's order (so the tree, and the seeds spawned
    per table, do not depend on set iteration)."""
    sorter = graphlib.TopologicalSorter(graph)
    sorter.prepare()
    out: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        out += ready
        sorter.done(*ready)
    return out


def _check_columns(specs: dict[str, TableSpec], tables: dict[str, pa.Table]) -> None:
    missing = sorted(set(specs) - set(tables))
    if missing:
        raise ConfigError(f"tables {missing} are configured but were not given")
    extra = sorted(set(tables) - set(specs))
    if extra:
        raise ConfigError(f"tables {extra} were given but are not in the config")
    for name, spec in specs.items():
        named = ([spec.primary_key] if spec.primary_key else []) + list(spec.foreign_keys)
        for column in named:
            if column not in tables[name].column_names:
                raise ConfigError(f"table {name!r} has no column {column!r} (it has {tables[name].column_names})")
        for column, target in spec.foreign_keys.items():
            parent, _, key = target.partition(".")
            if parent in tables and key not in tables[parent].column_names:
                raise ConfigError(f"table {name!r}: foreign key {column} -> {target}: {parent!r} has no column {key!r}")


# -- inference ---------------------------------------------------------------------------------
def infer_keys(config: RelationalConfig, tables: dict[str, pa.Table]) -> tuple[RelationalConfig, list[str]]:
    """Fill in the keys the config leaves out where names and values make them obvious.

    A table without a primary key gets ``id`` or ``<table>_id`` (singular or plural
    table name) when that column is unique and never null. A table without foreign keys
    gets one when exactly one of its columns is named like another table's primary key
    and most of its non-null values (more than half) exist there, the rest said as orphans
    (the key gate then stops the run on them); with several candidates none is chosen (the
    user declares which is the parent).

    Returns:
        The completed config, and one sentence per inference (or refusal) for the log.
    """
    specs = dict(config.tables)
    said: list[str] = []
    for name, spec in specs.items():
        if spec.primary_key is None and name in tables:
            found = _primary_key(name, tables[name])
            if found:
                specs[name] = spec.model_copy(update={"primary_key": found})
                said.append(f"{name}.{found} is the primary key of {name!r}: its name, and unique non-null values")
    for name, spec in specs.items():
        if spec.foreign_keys or name not in tables:
            continue
        table = tables[name]
        candidates = [
            (column, parent, other.primary_key, missing)
            for column in table.column_names
            if column != spec.primary_key
            for parent, other in specs.items()
            if parent != name and other.primary_key == column and parent in tables
            and (missing := _not_found(table[column], tables[parent][column])) is not None
        ]
        if len(candidates) == 1:
            column, parent, key, missing = candidates[0]
            specs[name] = spec.model_copy(update={"foreign_keys": {column: f"{parent}.{key}"}})
            # A few values without a parent do not make the link less obvious: they are orphans,
            # which the key gate then reports by table, column and count.
            found = f"every value found in {parent!r}" if not missing else f"{missing:,} values not found in {parent!r}"
            said.append(f"{name}.{column} -> {parent}.{key} is a foreign key: same name, {found}")
        elif candidates:
            listed = ", ".join(f"{c} -> {p}.{k}" for c, p, k, _ in candidates)
            said.append(f"{name!r} could hang under several tables ({listed}): declare its foreign key; none inferred")
    return RelationalConfig(tables=specs), said


def _primary_key(table: str, data: pa.Table) -> str | None:
    names = ["id", f"{table}_id", f"{table.removesuffix('s')}_id"]
    lowered = {c.lower(): c for c in data.column_names}
    for name in names:
        column = lowered.get(name.lower())
        if column is not None and data[column].null_count == 0 and pc.count_distinct(data[column]).as_py() == len(data):
            return column
    return None


def _not_found(values: pa.ChunkedArray, keys: pa.ChunkedArray) -> int | None:
    """How many non-null ``values`` are not among ``keys``; None when they cannot be a foreign key
    (no values, another type, or fewer than half found)."""
    values = values.drop_null()
    if len(values) == 0 or not values.type.equals(keys.type):
        return None
    missing = len(values) - int(pc.sum(pc.is_in(values, value_set=keys.combine_chunks())).as_py() or 0)
    return missing if missing <= len(values) / 2 else None
