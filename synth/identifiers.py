"""Fresh identifiers for synthetic rows: same type as the real ids, never a real id.

Identifier columns are not learned. Synthetic ids are counters placed where no real id
can be: integer ids start at ``10**d`` where ``d`` is the number of digits of the largest
real id (so they are always larger than any real one), text ids carry a ``syn-`` prefix.
Only the digit count is kept from the real data, never a real value.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synth.config import ColumnKind
from synth.errors import SchemaError
from synth.schema import Schema

TEXT_PREFIX = "syn-"
TEXT_WIDTH = 10


def learn_formats(table: pa.Table, schema: Schema) -> dict[str, dict]:
    """Per identifier column: the number of digits of its largest absolute numeric value."""
    formats = {}
    for spec in schema.of_kind(ColumnKind.IDENTIFIER):
        column = table[spec.name]
        digits = None
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
            largest = pc.max(pc.abs(column)).as_py()
            digits = len(str(int(largest))) if largest is not None and math.isfinite(largest) else 1
            if digits >= 18:
                raise SchemaError(f"identifier {spec.name!r} has {digits}-digit values; declare it as text")
        formats[spec.name] = {"digits": digits}
    return formats


def fresh_ids(arrow_type: pa.DataType, digits: int | None, start: int, count: int) -> pa.Array:
    """``count`` ids numbered from ``start``, typed as ``arrow_type``."""
    numbers = np.arange(start, start + count, dtype=np.int64)
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return pa.array(numbers + 10 ** (digits or 1)).cast(arrow_type)
    text = pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), width=TEXT_WIDTH, padding="0")
    return pc.binary_join_element_wise(TEXT_PREFIX, text, "").cast(arrow_type)
