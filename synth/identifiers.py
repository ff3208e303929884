"""Fresh identifiers for synthetic rows: same type as the real ids, never a real id.

Identifier columns are not learned. Synthetic ids are counters placed where no real id
can be: integer ids start at ``10**d`` where ``d`` is the number of digits of the largest
real id (so they are always larger than any real one), text ids carry a ``syn-`` prefix.
Only the digit count is kept from the real data, never a real value. Under DP not even
that: ``d`` is the public width of the column's type (one digit less than its largest
value holds), and a real id that reaches ``10**d`` is refused rather than risked.
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


def learn_formats(table: pa.Table, schema: Schema, private: bool = False) -> dict[str, dict]:
    """Per identifier column: the number of digits fresh ids start above.

    Args:
        table: the extract.
        schema: its columns.
        private: under DP the width comes from the type, not from the data (the largest
            real id's digit count would be a release the accountant does not pay for).
    """
    formats = {}
    for spec in schema.of_kind(ColumnKind.IDENTIFIER):
        column = table[spec.name]
        digits = None
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
            largest = pc.max(pc.abs(column)).as_py()
            real = len(str(int(largest))) if largest is not None and math.isfinite(largest) else 1
            if real >= 18:
                raise SchemaError(f"identifier {spec.name!r} has {real}-digit values; declare it as text")
            digits = _type_digits(column.type) if private else real
            if real > digits:
                raise SchemaError(
                    f"identifier {spec.name!r} has values of more than {digits} digits, where fresh ids start "
                    "under DP; declare it as text or store it in a wider integer type"
                )
        source = None if digits is None else "type width" if private else "largest real id"
        formats[spec.name] = {"digits": digits, "source": source}
    return formats


def _type_digits(arrow_type: pa.DataType) -> int:
    """Digits below the largest value of the type: fresh ids from ``10**d`` fit in it."""
    if pa.types.is_floating(arrow_type):  # every integer below 2**(mantissa bits + 1) is exact
        return len(str(2 ** (np.finfo(arrow_type.to_pandas_dtype()).nmant + 1))) - 1
    return min(len(str(np.iinfo(arrow_type.to_pandas_dtype()).max)) - 1, 18)  # counters are int64


def fresh_ids(arrow_type: pa.DataType, digits: int | None, start: int, count: int) -> pa.Array:
    """``count`` ids numbered from ``start``, typed as ``arrow_type``."""
    numbers = np.arange(start, start + count, dtype=np.int64)
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return pa.array(numbers + 10 ** (digits or 1)).cast(arrow_type)
    text = pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), width=TEXT_WIDTH, padding="0")
    return pc.binary_join_element_wise(TEXT_PREFIX, text, "").cast(arrow_type)
