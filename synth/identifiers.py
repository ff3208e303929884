"""Fresh identifiers for synthetic rows: same type as the real ids, never a real id.

Identifier columns are not learned. Synthetic ids are counters placed where no real id
can be: integer ids start at ``10**d`` where ``d`` is the number of digits of the largest
real id (so they are always larger than any real one), text ids carry a ``syn-`` prefix.
Only the digit count is kept from the real data, never a real value. Under DP not even
that: ``d`` is the public width of the column's type (one digit less than its largest
value holds), and a real id that reaches ``10**d`` is refused rather than risked.

Direct identifiers faked with fresh values (:mod:`synth.pii`) are identifier columns too:
NHS numbers are counters in the NHS test range, names, phone numbers, e-mails, postcodes
and free text are drawn from namespaces no real person holds, in the style (case, spacing,
phone format) learned from the real column. A column constant within every real patient
gets one value per synthetic patient. Under DP the style is the category's public default
(read from the column's name only), never learned from the values.
"""

from __future__ import annotations

import math
from collections.abc import Set

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synth.config import ColumnKind
from synth.errors import SchemaError
from synth.pii.categories import PiiCategory
from synth.pii.fake import fake_values, learn_style, nhs_test_numbers
from synth.pii.rules import region_of
from synth.schema import ColumnSpec, Schema

TEXT_PREFIX = "syn-"
TEXT_WIDTH = 10
_COUNTERS = (None, PiiCategory.ID.value)


def learn_formats(table: pa.Table, schema: Schema, locale: str = "en_GB", private: bool = False) -> dict[str, dict]:
    """Per identifier column: the number of digits fresh ids start above; for a faked direct
    identifier also its category, its style and whether it is constant within every patient
    (``per_entity``).

    Args:
        table: the extract.
        schema: its columns.
        locale: the locale fake values are written for.
        private: under DP the width comes from the type, not from the data (the largest
            real id's digit count would be a release the accountant does not pay for), and
            the style is read from the column's name alone.
    """
    formats = {}
    for spec in schema.of_kind(ColumnKind.IDENTIFIER):
        column = table[spec.name]
        rule = schema.direct_identifier(spec.name)
        category = rule.category if rule is not None else None
        digits = None
        if category in _COUNTERS and (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
            largest = pc.max(pc.abs(column)).as_py()
            real = len(str(int(largest))) if largest is not None and math.isfinite(largest) else 1
            if real >= 18:
                raise SchemaError(f"identifier {spec.name!r} has {real}-digit values; declare it as text")
            digits = type_digits(column.type) if private else real
            if real > digits:
                raise SchemaError(
                    f"identifier {spec.name!r} has values of more than {digits} digits, where fresh ids start "
                    "under DP; declare it as text or store it in a wider integer type"
                )
        source = None if digits is None else "type width" if private else "largest real id"
        formats[spec.name] = {"digits": digits, "source": source}
        if category not in _COUNTERS:
            written = column.slice(0, 0) if private else column  # under DP: the name's public default
            formats[spec.name] |= {
                "category": category,
                "style": learn_style(category, written, spec.name, region_of(locale)),
            }
        if schema.entity_key is not None and spec.name != schema.entity_key:
            formats[spec.name]["per_entity"] = _constant_within(column, table[schema.entity_key])
    return formats


def type_digits(arrow_type: pa.DataType) -> int:
    """Digits below the largest value of the type: fresh ids from ``10**d`` fit in it."""
    if pa.types.is_floating(arrow_type):  # every integer below 2**(mantissa bits + 1) is exact
        return len(str(2 ** (np.finfo(arrow_type.to_pandas_dtype()).nmant + 1))) - 1
    return min(len(str(np.iinfo(arrow_type.to_pandas_dtype()).max)) - 1, 18)  # counters are int64


def fresh_values(
    spec: ColumnSpec,
    fmt: dict,
    start: int,
    count: int,
    rng: np.random.Generator | None = None,
    locale: str = "en_GB",
    avoid: Set[str] | None = None,
    invented: bool = False,
) -> pa.Array:
    """``count`` fresh values for identifier column ``spec``, typed as the extract's column.

    Args:
        spec: the column.
        fmt: its entry of :func:`learn_formats`.
        start: number of the first value (counters stay unique across chunks).
        count: how many.
        rng: draws random fakes (names, phones ...); counters need none.
        locale: Faker locale of fake names.
        avoid: normalised real values no fake may equal (see :mod:`synth.pii.fake`).
        invented: names from a made-up namespace (under DP, where ``avoid`` is not used).
    """
    category = fmt.get("category")
    if category in _COUNTERS:
        return fresh_ids(spec.arrow, fmt.get("digits"), start, count)
    style = fmt.get("style", {})
    if category == PiiCategory.NHS_NUMBER.value:
        return nhs_test_numbers(start, count, spec.arrow, style.get("separator", " "))
    fakes = fake_values(category, count, rng, style, locale, frozenset(avoid or ()), invented)
    values = pa.array(fakes, type=pa.string())
    if pa.types.is_integer(spec.arrow) or pa.types.is_floating(spec.arrow):
        values = pc.cast(pc.replace_substring_regex(values, r"\D", ""), pa.int64())
    return values.cast(spec.arrow)


def fresh_ids(arrow_type: pa.DataType, digits: int | None, start: int, count: int) -> pa.Array:
    """``count`` ids numbered from ``start``, typed as ``arrow_type``."""
    numbers = np.arange(start, start + count, dtype=np.int64)
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return pa.array(numbers + 10 ** (digits or 1)).cast(arrow_type)
    text = pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), width=TEXT_WIDTH, padding="0")
    return pc.binary_join_element_wise(TEXT_PREFIX, text, "").cast(arrow_type)


def _constant_within(values: pa.ChunkedArray, keys: pa.ChunkedArray) -> bool:
    """Every patient (``keys``) has one value (nulls count as a value)."""
    counts = [("value", "count_distinct", pc.CountOptions("all"))]
    grouped = pa.table({"key": keys, "value": values}).group_by("key").aggregate(counts)
    return bool(pc.all(pc.less_equal(grouped["value_count_distinct"], 1)).as_py())
