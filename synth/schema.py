"""Column kinds: inferred from the data, overridden by the config, saved with the model.

The schema is the contract between the extract and everything downstream. It keeps,
for every column, what it means (:class:`ColumnKind`) and the exact Arrow type it had
in the extract, so synthetic output can be cast back to the same types.

Inference rules (each overridable per column in the config):

* Arrow booleans -> boolean; timestamps and dates -> datetime.
* Integer or text columns whose name reads like an identifier (``subject_id``,
  ``PatientId``, ``patient_nbr``) and that hold many distinct values -> identifier;
  so do integer columns distinct on every row of a large table (1,000 rows), and text
  columns distinct on every row of 20 or more.
* Integers (or whole-valued floats) with at most ``INTEGER_CATEGORY_LIMIT`` distinct
  values -> categorical (codes such as ``admission_type_id``, or ``sex`` stored as
  0.0/1.0); other numbers -> numerical.
* Text with at most ``max_categories`` distinct values -> categorical; longer-tailed
  text -> identifier (free text is not modelled; it is regenerated as opaque tokens).

Direct identifiers (names, NHS numbers and other ids, postcodes, dates of birth, phone
numbers, e-mails, free text) are then found by name and content, or declared
(``columns.<name>.pii``), and their handling decides their kind: faked columns become
identifiers, generalised ones datetime or categorical, dropped ones leave the schema
(:mod:`synth.pii`). The schema keeps one :class:`~synth.pii.rules.DirectIdentifier` per
such column, dropped ones included.

The entity key (patient) is the config's ``entity_key`` or, failing that, the
identifier column that repeats with the fewest distinct values (an id or NHS number,
never a name, phone or e-mail).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synth.config import ColumnKind, PipelineConfig
from synth.constraints import check_columns
from synth.errors import ConfigError, SchemaError
from synth.pii import rules as pii
from synth.pii.categories import KEY_CATEGORIES, PiiHandling

INTEGER_CATEGORY_LIMIT = 10
_ID_NAME = re.compile(r"(^|[_\s.])(id|nbr|num|number|key|no)$|[a-z0-9](Id|ID|Nbr|Key)$", re.IGNORECASE)
_MIN_ROWS_FOR_UNIQUE_ID = 1_000
#: Text with a different value on every one of this many rows is a label, not a category: modelled as
#: categories, each synthetic row would carry a real row's value.
_MIN_ROWS_FOR_UNIQUE_TEXT = 20
_MIN_DISTINCT_FOR_NAMED_ID = 100
_PII_SAMPLE_STREAM = 0x9111


@dataclass(frozen=True)
class ColumnSpec:
    """One column: its name, what it means, and its Arrow type in the extract."""

    name: str
    kind: ColumnKind
    arrow_type: str
    datetime_format: str | None = None

    @property
    def arrow(self) -> pa.DataType:
        """The column's Arrow type in the extract."""
        return arrow_type_from_string(self.arrow_type)


@dataclass(frozen=True)
class Schema:
    """The ordered columns of an extract and its entity key (if any)."""

    columns: tuple[ColumnSpec, ...]
    entity_key: str | None = None
    dropped: tuple[str, ...] = field(default=())
    direct_identifiers: tuple[pii.DirectIdentifier, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.entity_key is not None and self.entity_key not in self.names:
            raise SchemaError(f"entity key {self.entity_key!r} is not a column of the schema")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def __getitem__(self, name: str) -> ColumnSpec:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    def direct_identifier(self, name: str) -> pii.DirectIdentifier | None:
        """The direct identifier rule of column ``name`` (kept or dropped), if it is one."""
        return next((d for d in self.direct_identifiers if d.column == name), None)

    def of_kind(self, *kinds: ColumnKind) -> list[ColumnSpec]:
        return [c for c in self.columns if c.kind in kinds]

    @property
    def modelled(self) -> list[ColumnSpec]:
        """Columns the generative model learns (identifiers are regenerated, not learned)."""
        return [c for c in self.columns if c.kind is not ColumnKind.IDENTIFIER]

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, arrow_type_from_string(c.arrow_type)) for c in self.columns])

    def sdmetrics_metadata(self) -> dict:
        """The metadata dict sdmetrics reports expect."""
        sdtypes = {
            ColumnKind.NUMERICAL: "numerical",
            ColumnKind.CATEGORICAL: "categorical",
            ColumnKind.DATETIME: "datetime",
            ColumnKind.BOOLEAN: "boolean",
            ColumnKind.IDENTIFIER: "id",
        }
        return {"columns": {c.name: {"sdtype": sdtypes[c.kind]} for c in self.columns}}

    def to_json(self) -> str:
        return json.dumps(
            {
                "entity_key": self.entity_key,
                "dropped": list(self.dropped),
                "columns": [{**asdict(c), "kind": c.kind.value} for c in self.columns],
                "direct_identifiers": [d.to_dict() for d in self.direct_identifiers],
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> Schema:
        data = json.loads(text)
        columns = tuple(
            ColumnSpec(
                name=c["name"],
                kind=ColumnKind(c["kind"]),
                arrow_type=c["arrow_type"],
                datetime_format=c.get("datetime_format"),
            )
            for c in data["columns"]
        )
        identifiers = tuple(pii.DirectIdentifier(**d) for d in data.get("direct_identifiers", ()))
        return cls(
            columns=columns,
            entity_key=data.get("entity_key"),
            dropped=tuple(data.get("dropped", ())),
            direct_identifiers=identifiers,
        )


def infer_schema(table: pa.Table, config: PipelineConfig | None = None) -> Schema:
    """Infer column kinds from ``table`` and apply the config's overrides.

    Args:
        table: the extract (or a representative sample of it).
        config: overrides; unknown or contradictory settings raise :class:`ConfigError`.

    Returns:
        The schema, columns in the extract's order, dropped columns removed.
    """
    config = config or PipelineConfig()
    if table.num_rows == 0:
        raise SchemaError("the extract has no rows")
    _check_config_names(table, config)

    columns, identifiers, dropped = [], [], list(config.drop)
    rng = np.random.default_rng([config.seed, _PII_SAMPLE_STREAM])
    region = pii.region_of(config.pii.locale)
    for name in table.column_names:
        if name in config.drop:
            continue
        override = config.columns.get(name)
        kind = override.kind if override and override.kind else _infer_kind(name, table[name], config)
        if name == config.entity_key:
            kind = ColumnKind.IDENTIFIER
        identifier = pii.decide(name, table[name], kind, override, name == config.entity_key, rng, region)
        if identifier is not None:
            identifiers.append(identifier)
            if identifier.handling == PiiHandling.DROP.value:
                dropped.append(name)
                continue
            kind = pii.kind_after(identifier, kind, table.schema.field(name).type)
        spec = ColumnSpec(
            name=name,
            kind=kind,
            arrow_type=str(table.schema.field(name).type),
            datetime_format=override.datetime_format if override else None,
        )
        _check_kind_fits(table[name], spec)
        columns.append(spec)
    if not any(c.kind is not ColumnKind.IDENTIFIER for c in columns):
        raise SchemaError("every column is an identifier: there is nothing to model")

    entity_key = config.entity_key or _infer_entity_key(table, columns, identifiers)
    return Schema(
        columns=tuple(columns), entity_key=entity_key, dropped=tuple(dropped), direct_identifiers=tuple(identifiers)
    )


def _check_config_names(table: pa.Table, config: PipelineConfig) -> None:
    known = set(table.column_names)
    listing = ", ".join(table.column_names[:40]) + (" ..." if len(known) > 40 else "")
    for section, names in (("columns", config.columns), ("drop", config.drop)):
        for name in names:
            if name not in known:
                raise ConfigError(f"config {section}.{name}: no such column in the extract (columns: {listing})")
    if config.entity_key is not None and config.entity_key not in known:
        raise ConfigError(f"config entity_key: no column {config.entity_key!r} in the extract (columns: {listing})")
    if config.entity_key is not None:
        keys = table[config.entity_key]
        if pc.count_distinct(keys).as_py() == keys.length() - keys.null_count:
            raise ConfigError(
                f"config entity_key: {config.entity_key!r} never repeats (one row per value), so it cannot "
                "group a patient's rows; name the patient identifier, or remove entity_key"
            )
    for name in config.entity.static or []:
        if name not in known:
            raise ConfigError(f"config entity.static.{name}: no such column in the extract (columns: {listing})")
    check_columns(config.constraints, table.column_names)


def _infer_kind(name: str, column: pa.ChunkedArray, config: PipelineConfig) -> ColumnKind:
    dtype = column.type
    if pa.types.is_boolean(dtype):
        return ColumnKind.BOOLEAN
    if pa.types.is_timestamp(dtype) or pa.types.is_date(dtype):
        return ColumnKind.DATETIME
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return _classify_float(column)
    if pa.types.is_integer(dtype) or pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        non_null = column.length() - column.null_count
        distinct = pc.count_distinct(column).as_py()
        return _classify(dtype, name, distinct, non_null, config)
    if pa.types.is_dictionary(dtype):
        return ColumnKind.CATEGORICAL
    if pa.types.is_null(dtype):
        raise SchemaError(f"column {name!r} has no value in any row (Arrow type null): drop it, or read it as text")
    raise SchemaError(f"column {name!r}: unsupported Arrow type {dtype}; declare the column's kind or drop it")


def _classify_float(column: pa.ChunkedArray) -> ColumnKind:
    # Codes stored as floats because the CSV had gaps (sex 0.0/1.0, chest pain 1.0-4.0).
    values = pc.drop_null(column)
    if len(values) and pc.count_distinct(values).as_py() <= INTEGER_CATEGORY_LIMIT:
        whole = pc.all(pc.equal(values, pc.round(values))).as_py()
        if whole:
            return ColumnKind.CATEGORICAL
    return ColumnKind.NUMERICAL


def _classify(dtype: pa.DataType, name: str, distinct: int, non_null: int, config: PipelineConfig) -> ColumnKind:
    is_text = not pa.types.is_integer(dtype)
    named_like_id = bool(_ID_NAME.search(name))
    if named_like_id:
        # `patient_nbr` with 70k values is a key; `admission_type_id` with 8 is a code.
        return ColumnKind.IDENTIFIER if distinct >= _MIN_DISTINCT_FOR_NAMED_ID else ColumnKind.CATEGORICAL
    if distinct == non_null and non_null >= (_MIN_ROWS_FOR_UNIQUE_TEXT if is_text else _MIN_ROWS_FOR_UNIQUE_ID):
        return ColumnKind.IDENTIFIER
    if is_text:
        return ColumnKind.CATEGORICAL if distinct <= config.transforms.max_categories else ColumnKind.IDENTIFIER
    return ColumnKind.CATEGORICAL if distinct <= INTEGER_CATEGORY_LIMIT else ColumnKind.NUMERICAL


def _check_kind_fits(column: pa.ChunkedArray, spec: ColumnSpec) -> None:
    dtype = column.type
    if spec.kind is ColumnKind.NUMERICAL and not (
        pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype)
    ):
        raise ConfigError(
            f"column {spec.name!r}: declared numerical but holds {dtype} values; "
            "declare it categorical, or clean it to numbers"
        )
    if spec.kind is ColumnKind.DATETIME and not (pa.types.is_timestamp(dtype) or pa.types.is_date(dtype)):
        raise ConfigError(
            f"column {spec.name!r}: declared datetime but holds {dtype} values that were not read as dates; "
            "for CSV sources set columns.<name>.datetime_format to their strptime format"
        )
    if spec.kind is ColumnKind.BOOLEAN:
        distinct = pc.count_distinct(column).as_py()
        if not pa.types.is_boolean(dtype) and distinct > 2:
            raise ConfigError(f"column {spec.name!r}: declared boolean but holds {distinct} distinct values")


def _infer_entity_key(table: pa.Table, columns: list[ColumnSpec], identifiers: list) -> str | None:
    # A repeated name, phone or e-mail is a patient's attribute, not the key that groups their rows.
    not_keys = {d.column for d in identifiers if d.category not in {c.value for c in KEY_CATEGORIES}}
    candidates = []
    for spec in columns:
        if spec.kind is not ColumnKind.IDENTIFIER or spec.name in not_keys:
            continue
        column = table[spec.name]
        distinct = pc.count_distinct(column).as_py()
        non_null = column.length() - column.null_count
        if column.null_count == 0 and 1 < distinct < non_null and _ID_NAME.search(spec.name):
            candidates.append((distinct, spec.name))
    return min(candidates)[1] if candidates else None


def arrow_type_from_string(text: str) -> pa.DataType:
    """Rebuild an Arrow type from its ``str()`` form (the types an extract can hold)."""
    simple = {
        "bool": pa.bool_(),
        "int8": pa.int8(),
        "int16": pa.int16(),
        "int32": pa.int32(),
        "int64": pa.int64(),
        "uint8": pa.uint8(),
        "uint16": pa.uint16(),
        "uint32": pa.uint32(),
        "uint64": pa.uint64(),
        "float": pa.float32(),
        "float16": pa.float16(),
        "halffloat": pa.float16(),
        "double": pa.float64(),
        "string": pa.string(),
        "large_string": pa.large_string(),
        "date32[day]": pa.date32(),
        "date64[ms]": pa.date64(),
    }
    if text in simple:
        return simple[text]
    match = re.fullmatch(r"timestamp\[(s|ms|us|ns)(?:, tz=(.+))?\]", text)
    if match:
        return pa.timestamp(match.group(1), tz=match.group(2))
    match = re.fullmatch(r"dictionary<values=(\w+), indices=(\w+), ordered=([01])>", text)
    if match:
        return pa.dictionary(simple[match.group(2)], simple[match.group(1)], ordered=match.group(3) == "1")
    match = re.fullmatch(r"decimal128\((\d+), (\d+)\)", text)
    if match:
        return pa.decimal128(int(match.group(1)), int(match.group(2)))
    raise SchemaError(f"unsupported Arrow type in schema: {text}")
