"""Odd but usable data: what the pipeline assumes about it, as sentences for the run's log.

An extract with a constant column, a column of numbers and text, dates that do not all
parse, NaN or negative ages is modelled as it is, not refused; these sentences say what
was assumed and how to say otherwise (``docs/bad-input.md`` lists every case). Two
sources: the bounded sample the schema is inferred from (how a column was read), and the
statistics of the whole clean extract (what it holds). Sentences name columns and counts,
never a value.
"""

from __future__ import annotations

import re

import polars as pl
import pyarrow as pa

from synth.config import ColumnKind, PipelineConfig
from synth.schema import Schema

LONG_TEXT = 1_000  # characters: longer values are free text more often than categories
_AGE = re.compile(r"(^|[^a-z])age([^a-z]|$)", re.IGNORECASE)
_ISO_SHAPE = r"^\d{4}-\d{2}-\d{2}"
_MOSTLY = 0.5


def from_sample(sample: pa.Table, schema: Schema, config: PipelineConfig) -> list[str]:
    """How the text columns of ``sample`` were read: numbers mixed with text, dates that do not parse,
    a different value in every row, very long values."""
    notes = []
    for spec in schema.columns:
        column = sample[spec.name]
        declared = config.columns.get(spec.name)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        values = pl.from_arrow(column).drop_nulls()
        if values.is_empty() or (declared is not None and declared.kind is not None):
            continue
        kind = spec.kind.value
        n = len(values)
        numbers = values.cast(pl.Float64, strict=False).drop_nulls().len()
        if n * _MOSTLY <= numbers < n:
            notes.append(
                f"column {spec.name!r} mixes numbers and text ({n - numbers:,} of {n:,} sampled values are not "
                f"numbers): modelled as {kind}; if that text marks missing values, list it under source.na_values "
                "to read the column as numbers"
            )
        dated = values.str.contains(_ISO_SHAPE).sum()
        bad = values.str.to_datetime(strict=False, time_unit="us").null_count() if dated >= n * _MOSTLY else 0
        if bad:
            notes.append(
                f"column {spec.name!r} looks like dates, but {bad:,} of {n:,} sampled values are not valid ISO 8601 "
                f"dates (a 30 February, a word): kept as text ({kind}); declare columns.{spec.name}: datetime to "
                "read it as dates (the run then stops on values that are not, counting them)"
            )
        identifier = schema.direct_identifier(spec.name)
        if (spec.kind is ColumnKind.IDENTIFIER and spec.name != schema.entity_key and values.n_unique() == n
                and (identifier is None or identifier.category == "id")):
            notes.append(
                f"column {spec.name!r} has a different value in every row: treated as an identifier (fresh values, "
                f"not modelled); declare columns.{spec.name}: categorical to model its values"
            )
        longest = values.str.len_chars().max()
        if longest > LONG_TEXT and identifier is None:
            notes.append(
                f"column {spec.name!r} holds text up to {longest:,} characters long: modelled as {kind}; if it is "
                f"free text, declare columns.{spec.name}.pii: free_text to leave it out"
            )
    return notes


def from_stats(stats: dict, schema: Schema, non_finite: dict[str, int]) -> list[str]:
    """What the whole clean extract holds: empty and constant columns, negative ages, NaN and infinities.

    Args:
        stats: the merged statistics (``stats.json``: ``rows`` and per-column entries).
        schema: the extract's schema.
        non_finite: NaN and infinite values per column, made missing while cleaning.
    """
    notes = []
    rows = stats["rows"]
    for spec in schema.columns:
        entry = stats["columns"][spec.name]
        nulls = entry["nulls"]
        if non_finite.get(spec.name):
            notes.append(f"column {spec.name!r}: {non_finite[spec.name]:,} NaN or infinite values read as missing")
        if rows and nulls == rows:
            text = pa.types.is_string(spec.arrow) or pa.types.is_large_string(spec.arrow)
            notes.append(f"column {spec.name!r} has no value in any row: kept as an empty {'text ' if text else ''}column")
            continue
        if spec.kind is not ColumnKind.IDENTIFIER and _one_value(entry, spec.kind):
            notes.append(
                f"column {spec.name!r} holds one value in every row{' that has one' if nulls else ''}: kept (every "
                "synthetic row repeats it)"
            )
        if _AGE.search(spec.name) and entry.get("negative"):
            notes.append(
                f"column {spec.name!r} looks like an age but {entry['negative']:,} values are negative: kept as they "
                f"are; fix the extract, or add the constraint {{type: range, column: {spec.name}, min: 0}} so that "
                "synthetic values are not"
            )
    return notes


def _one_value(entry: dict, kind: ColumnKind) -> bool:
    if kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
        return len(entry.get("categories", {})) == 1 and not entry.get("more_categories")
    return entry.get("min") is not None and entry.get("min") == entry.get("max")

