"""Bring the tables under comparison to the schema, and check the evaluation settings."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from synth.config import EvaluationOptions
from synth.errors import ConfigError, SchemaError
from synth.schema import Schema


def check_options(options: EvaluationOptions, schema: Schema) -> None:
    """Every column named in ``options`` must be a modelled column of ``schema``.

    Raises:
        ConfigError: naming the setting and the column.
    """
    modelled = {c.name for c in schema.modelled}
    listing = ", ".join(c.name for c in schema.modelled)
    named = [("target", [options.target] if options.target else []), ("sensitive", options.sensitive),
             ("protected", options.protected)]
    for setting, names in named:
        for name in names:
            if name not in schema.names:
                raise ConfigError(f"evaluation.{setting}: no column {name!r} in the data (columns: {listing})")
            if name not in modelled:
                raise ConfigError(
                    f"evaluation.{setting}: {name!r} is an identifier column, which is never compared; "
                    f"choose one of: {listing}"
                )


def conform(table: pa.Table, schema: Schema, what: str) -> pa.Table:
    """``table``'s schema columns, cast to the schema's types (a CSV made elsewhere may differ).

    Identifier columns may be absent (they are never compared).

    Raises:
        SchemaError: a modelled column is missing or holds values of another kind.
    """
    missing = [c.name for c in schema.modelled if c.name not in table.column_names]
    if missing:
        raise SchemaError(f"the {what} table lacks columns {missing}; it must have the real table's columns")
    arrays, fields = [], []
    for spec in schema.columns:
        if spec.name not in table.column_names:
            continue
        column = table[spec.name]
        if column.type != spec.arrow:
            try:
                column = pc.cast(column, spec.arrow)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SchemaError(
                    f"the {what} table's column {spec.name!r} holds {column.type} values that cannot be read as "
                    f"{spec.arrow_type} like the real column ({str(exc).splitlines()[0]})"
                ) from None
        arrays.append(column)
        fields.append(pa.field(spec.name, column.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
