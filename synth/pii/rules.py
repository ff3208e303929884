"""The decision per column - config over detection - and applying it to tables and frames.

A column is a direct identifier when the config says so (``columns.<name>.pii``), when
:func:`synth.pii.detect.detect` finds it by name or content, or when the schema calls it
an identifier (category ``id``: ids were already regenerated, never modelled). ``pii:
none`` says a column is not one. The handling is the config's or the category's default
(:mod:`synth.pii.categories`), and it decides the column's kind: ``fake`` makes it an
identifier (not modelled; fresh values at sampling), ``generalise`` a datetime (a date of
birth) or categorical (a postcode) column of generalised values, and ``drop`` removes it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from synth.config import ColumnKind, ColumnOverride
from synth.errors import ConfigError
from synth.pii.categories import (
    DEFAULT_HANDLING,
    DRAWN_CATEGORIES,
    KEY_CATEGORIES,
    LEVELS,
    PiiCategory,
    PiiHandling,
    check_handling,
)
from synth.pii.detect import detect
from synth.pii.values import generalise, normalised


LEVEL_NAMES = {"month": "month", "year": "year", "outward": "outward code", "area": "postcode area"}


@dataclass(frozen=True)
class DirectIdentifier:
    """What a direct identifier column is and what is done with it (saved in the schema; no values)."""

    column: str
    category: str
    handling: str
    level: str | None = None
    found_by: str = "config"  # config, column name, content, column name and content, identifier kind
    default: bool = True  # the handling is the category's default (not set in the config)
    note: str = ""

    def describe(self) -> str:
        """One line for the run's log and the report."""
        level = f" to its {LEVEL_NAMES[self.level]}" if self.level else ""
        source = f"the default for {self.category}" if self.default else "set in the config"
        note = f"; {self.note}" if self.note else ""
        return (
            f"direct identifier {self.column!r}: {self.category} (found by {self.found_by}) -> "
            f"{self.handling}{level} ({source}{note})"
        )

    def to_dict(self) -> dict:
        return asdict(self)


def decide(
    name: str,
    column: pa.ChunkedArray,
    kind: ColumnKind,
    override: ColumnOverride | None,
    is_key: bool,
    rng: np.random.Generator,
    region: str = "GB",
) -> DirectIdentifier | None:
    """The rule for one column, or ``None`` when it is not a direct identifier.

    Args:
        name: the column.
        column: its values (a bounded sample is enough).
        kind: its kind as declared or inferred before this decision.
        override: the config's entry for the column.
        is_key: the column is the declared entity key (its fakes must be unique counters).
        rng: draws the detection's content sample.
        region: the country of phone numbers written without ``+``.

    Raises:
        ConfigError: the config's handling does not fit the category, or asks to drop or
            generalise the entity key.
    """
    declared = override.pii if override is not None else None
    if declared is not None and declared.category == "none":
        return None
    where = f"config columns.{name}.pii"
    note = ""
    if declared is not None and declared.category is not None:
        category, found_by = PiiCategory(declared.category), "config"
    else:
        found = detect(name, column, rng, region)
        if found is not None:
            category, found_by = found.category, found.found_by
        elif kind is ColumnKind.IDENTIFIER:
            category, found_by = PiiCategory.ID, "identifier kind"
        else:
            return None
    if is_key and category not in KEY_CATEGORIES:
        if found_by == "config":
            raise ConfigError(f"{where}: the entity key {name!r} holds patient ids; declare it id or nhs_number")
        category, note = PiiCategory.ID, "the entity key: numbered as an id"
    handling = DEFAULT_HANDLING[category]
    if declared is not None and declared.handling is not None:
        handling = declared.handling
    level = declared.level if declared is not None else None
    problem = check_handling(category, handling, level)
    if problem:
        raise ConfigError(f"{where}: {problem} (the column was found to be {category.value} by {found_by})")
    if handling is PiiHandling.GENERALISE and level is None:
        level = LEVELS[category][0]
    if is_key and handling is not PiiHandling.FAKE:
        done = {PiiHandling.DROP: "dropped", PiiHandling.GENERALISE: "generalised"}[handling]
        raise ConfigError(f"{where}: the entity key {name!r} cannot be {done}; its ids are regenerated")
    declared_kind = override.kind if override is not None else None
    if declared_kind is not None and declared_kind is not _kind_after(category, handling, declared_kind):
        if found_by == "config":
            raise ConfigError(
                f"config columns.{name}: kind {declared_kind.value} contradicts pii {category.value} "
                f"({handling.value}); keep one"
            )
        note = f"declared {declared_kind.value}; set pii: none to model it"
    return DirectIdentifier(
        column=name,
        category=category.value,
        handling=handling.value,
        level=level,
        found_by=found_by,
        default=declared is None or declared.handling is None,
        note=note,
    )


def kind_after(identifier: DirectIdentifier, kind: ColumnKind, dtype: pa.DataType) -> ColumnKind:
    """The column's kind once ``identifier``'s handling applies (``kind``: before it).

    Raises:
        ConfigError: a date of birth to generalise is not a date or timestamp column.
    """
    category, handling = PiiCategory(identifier.category), PiiHandling(identifier.handling)
    if category is PiiCategory.DATE_OF_BIRTH and handling is PiiHandling.GENERALISE and not pa.types.is_temporal(dtype):
        raise ConfigError(
            f"column {identifier.column!r}: a date of birth is generalised as a date, but it holds {dtype} values; "
            f"for CSV sources set columns.{identifier.column}.datetime_format"
        )
    return _kind_after(category, handling, kind)


def _kind_after(category: PiiCategory, handling: PiiHandling, kind: ColumnKind) -> ColumnKind:
    if handling is PiiHandling.FAKE:
        return ColumnKind.IDENTIFIER
    if handling is PiiHandling.GENERALISE:
        return ColumnKind.DATETIME if category is PiiCategory.DATE_OF_BIRTH else ColumnKind.CATEGORICAL
    return kind


def generalised_table(table: pa.Table, identifiers) -> pa.Table:
    """``table`` with every generalised identifier column it holds generalised (idempotent)."""
    for rule in identifiers:
        if rule.handling == PiiHandling.GENERALISE.value and rule.column in table.column_names:
            index = table.column_names.index(rule.column)
            table = table.set_column(index, rule.column, generalise(table[rule.column], rule.category, rule.level))
    return table


def generalised_frame(frame: pd.DataFrame, identifiers) -> pd.DataFrame:
    """A model frame with every generalised identifier column it holds generalised (idempotent)."""
    rules = [r for r in identifiers if r.handling == PiiHandling.GENERALISE.value and r.column in frame.columns]
    if not rules:
        return frame
    frame = frame.copy()
    for rule in rules:
        values = pa.array(frame[rule.column].to_numpy(), from_pandas=True)
        frame[rule.column] = generalise(values, rule.category, rule.level).to_numpy(zero_copy_only=False)
    return frame


def drawn_fakes(identifiers) -> list[DirectIdentifier]:
    """The faked identifiers whose fakes are drawn at random (names, phones ...), not counted."""
    drawn = {c.value for c in DRAWN_CATEGORIES}
    return [r for r in identifiers if r.handling == PiiHandling.FAKE.value and r.category in drawn]


def values_to_avoid(tables: list[pa.Table], identifiers) -> dict[str, frozenset[str]]:
    """Per drawn fake column, the normalised distinct real values of ``tables`` (in memory only)."""
    avoid: dict[str, frozenset[str]] = {}
    for rule in drawn_fakes(identifiers):
        found: set[str] = set()
        for table in tables:
            if rule.column in table.column_names:
                values = pc.unique(normalised(table[rule.column], rule.category))
                found.update(v for v in values.to_pylist() if v is not None)
        avoid[rule.column] = frozenset(found)
    return avoid


def region_of(locale: str) -> str:
    """The country of a Faker locale (``en_GB`` -> ``GB``); GB where it names none."""
    parts = locale.split("_")
    return parts[1] if len(parts) > 1 and len(parts[1]) == 2 else "GB"
