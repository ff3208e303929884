"""Declared constraints: checked with AND semantics, row by row, vectorised.

A row satisfies the constraints when it satisfies *every* one of them (the original
pipeline joined its conditions with OR, so a row passed if any one held). Missing values
never violate a constraint: a null discharge date is not "before" its admission.

Date inequalities and ages are enforced by construction (:mod:`synth.entity`); ranges,
numeric inequalities and value combinations by rejection in the synthesizers; every kind
is counted here, on real and synthetic data alike.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synth.config import AgeConstraint, CombinationConstraint, Constraint, InequalityConstraint, RangeConstraint
from synth.errors import ConfigError

UNITS_NS = [86_400 * 10**9, 3_600 * 10**9, 60 * 10**9, 10**9, 10**6, 10**3, 1]


def describe(constraint: Constraint) -> str:
    """A short readable name, used as the key in ``metrics.json``."""
    if isinstance(constraint, InequalityConstraint):
        return f"{constraint.low} {'<' if constraint.strict else '<='} {constraint.high}"
    if isinstance(constraint, RangeConstraint):
        low = "" if constraint.min is None else f"{constraint.min} <= "
        high = "" if constraint.max is None else f" <= {constraint.max}"
        return f"{low}{constraint.column}{high}"
    if isinstance(constraint, CombinationConstraint):
        return f"{'allowed' if constraint.allowed is not None else 'forbidden'} combinations of {', '.join(constraint.columns)}"
    return f"{constraint.column} = age from {constraint.birth} to {constraint.at}"


def columns_of(constraint: Constraint) -> list[str]:
    if isinstance(constraint, InequalityConstraint):
        return [constraint.low, constraint.high]
    if isinstance(constraint, RangeConstraint):
        return [constraint.column]
    if isinstance(constraint, CombinationConstraint):
        return list(constraint.columns)
    return [constraint.column, constraint.birth, constraint.at]


def check_columns(constraints: list[Constraint], columns: list[str]) -> None:
    """Every constraint names existing columns, or a ConfigError says which does not."""
    known = set(columns)
    for i, constraint in enumerate(constraints):
        missing = [c for c in columns_of(constraint) if c not in known]
        if missing:
            raise ConfigError(f"config constraints.{i} ({describe(constraint)}): no column {missing[0]!r} in the extract")


def violated(frame: pd.DataFrame, constraint: Constraint, units: dict[str, int] | None = None) -> np.ndarray:
    """Boolean mask of the rows that break ``constraint``.

    ``units``: the resolution of datetime columns when ``frame`` is one batch of a larger
    table (:func:`resolution_ns` over the whole column); measured on ``frame`` otherwise.
    """
    if isinstance(constraint, InequalityConstraint):
        unit = (units or {}).get(constraint.high)
        return inequality_violations(frame[constraint.low], frame[constraint.high], constraint.strict, unit)
    if isinstance(constraint, RangeConstraint):
        values = pd.to_numeric(frame[constraint.column], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.zeros(len(values), dtype=bool)
        with np.errstate(invalid="ignore"):
            if constraint.min is not None:
                bad |= values < constraint.min
            if constraint.max is not None:
                bad |= values > constraint.max
        return bad
    if isinstance(constraint, CombinationConstraint):
        return _combination(frame, constraint)
    return _age(frame, constraint)


def violations(frame: pd.DataFrame, constraints: list[Constraint]) -> np.ndarray:
    """Rows that break at least one constraint (AND semantics for passing)."""
    bad = np.zeros(len(frame), dtype=bool)
    for constraint in constraints:
        bad |= violated(frame, constraint)
    return bad


def count_violations(
    frame: pd.DataFrame, constraints: list[Constraint], units: dict[str, int] | None = None
) -> dict[str, int]:
    return {describe(c): int(violated(frame, c, units).sum()) for c in constraints}


def inequality_violations(low: pd.Series, high: pd.Series, strict: bool, unit: int | None = None) -> np.ndarray:
    """Rows where ``high`` is before ``low`` (or equal, when strict); nulls never break it.

    ``unit``: the resolution of ``high`` in nanoseconds (default: measured on ``high``).
    """
    present = (low.notna() & high.notna()).to_numpy()
    if pd.api.types.is_datetime64_any_dtype(high):
        # Dates compare at the later column's own resolution: an appointment *day* is not
        # before a booking made at 10:00 that same day.
        h = high.to_numpy(dtype="datetime64[ns]").view(np.int64)
        low = low if pd.api.types.is_datetime64_any_dtype(low) else pd.to_datetime(low)  # parsing is slow
        l_ = low.to_numpy(dtype="datetime64[ns]").view(np.int64)
        unit = unit or resolution_ns(high)
        l_ = (l_ // unit) * unit
    else:
        h = pd.to_numeric(high, errors="coerce").to_numpy(dtype=np.float64)
        l_ = pd.to_numeric(low, errors="coerce").to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bad = (h <= l_) if strict else (h < l_)
    return bad & present


def resolution_ns(values: pd.Series) -> int:
    """The largest of day, hour, minute, second, ms, us, ns that divides every value."""
    ns = values.dropna().to_numpy(dtype="datetime64[ns]").view(np.int64)
    for unit in UNITS_NS:
        if not np.any(ns % unit):
            return unit
    return 1


def _combination(frame: pd.DataFrame, constraint: CombinationConstraint) -> np.ndarray:
    values = frame[constraint.columns]
    present = values.notna().all(axis=1).to_numpy()
    listed = [tuple(_plain(v) for v in combo) for combo in (constraint.allowed or constraint.forbidden)]
    canonical = pd.DataFrame(
        {c: values[c].astype(float) if pd.api.types.is_numeric_dtype(values[c]) else values[c] for c in values}
    )
    member = pd.MultiIndex.from_frame(canonical).isin(listed)
    bad = ~member if constraint.allowed is not None else member
    return bad & present


def _age(frame: pd.DataFrame, constraint: AgeConstraint) -> np.ndarray:
    from synth.entity import derive_age  # entity builds on constraints' config types; import late

    expected = derive_age(frame[constraint.birth], frame[constraint.at], constraint.top_code)
    actual = pd.to_numeric(frame[constraint.column], errors="coerce").to_numpy(dtype=np.float64)
    present = ~np.isnan(expected) & ~np.isnan(actual)
    return present & (expected != actual)


def _plain(value):
    """Numbers compare by value whatever their type (1 == 1.0 == numpy 1)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    return value
