"""Fresh identifiers for synthetic rows: same type as the real ids, never a real id.

Identifier columns are not learned. Synthetic ids are counters placed where no real id
can be: integer ids start at ``10**d`` where ``d`` is the number of digits of the largest
real id (so they are always larger than any real one), text ids carry a ``syn-`` prefix.
Only the digit count is kept from the real data, never a real value.

Direct identifiers faked with fresh values (:mod:`synth.pii`) are identifier columns too:
NHS numbers are counters in the NHS test range, names, phone numbers, e-mails, postcodes
and free text are drawn from namespaces no real person holds, in the style (case, spacing,
phone format) learned from the real column. A column constant within every real patient
gets one value per synthetic patient.
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


def learn_formats(table: pa.Table, schema: Schema, locale: str = "en_GB") -> dict[str, dict]:
    """Per identifier column: the number of digits of its largest absolute numeric value; for a
    faked direct identifier also its category, its style and whether it is constant within
    every patient (``per_entity``)."""
    formats = {}
    for spec in schema.of_kind(ColumnKind.IDENTIFIER):
        column = table[spec.name]
        rule = schema.direct_identifier(spec.name)
        category = rule.category if rule is not None else None
        digits = None
        if category in _COUNTERS and (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
            largest = pc.max(pc.abs(column)).as_py()
            digits = len(str(int(largest))) if largest is not None and math.isfinite(largest) else 1
            if digits >= 18:
                raise SchemaError(f"identifier {spec.name!r} has {digits}-digit values; declare it as text")
        formats[spec.name] = {"digits": digits}
        if category not in _COUNTERS:
            formats[spec.name] |= {
                "category": category,
                "style": learn_style(category, column, spec.name, region_of(locale)),
            }
        if schema.entity_key is not None and spec.name != schema.entity_key:
            formats[spec.name]["per_entity"] = _constant_within(column, table[schema.entity_key])
    return formats


def fresh_values(
    spec: ColumnSpec,
    fmt: dict,
    start: int,
    count: int,
    rng: np.random.Generator | None = None,
    locale: str = "en_GB",
    avoid: Set[str] | None = None,
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
    """
    category = fmt.get("category")
    if category in _COUNTERS:
        return fresh_ids(spec.arrow, fmt.get("digits"), start, count)
    style = fmt.get("style", {})
    if category == PiiCategory.NHS_NUMBER.value:
        return nhs_test_numbers(start, count, spec.arrow, style.get("separator", " "))
    values = pa.array(fake_values(category, count, rng, style, locale, frozenset(avoid or ())), type=pa.string())
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
