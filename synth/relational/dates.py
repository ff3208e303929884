"""Dates across tables: a child's dates stored as steps after its own or its parent's dates.

:mod:`synth.entity` stores a date as whole steps of its unit after the date it follows in
(almost) every real row. Here the candidates also include the dates of the row's
**parent** row (an ICU stay's ``intime`` after its admission's ``admittime``, an event's
``charttime`` after its stay's ``intime``), so the order across tables holds by
construction: a step is never negative. A date that (almost) always lies **before** a
parent date (``outtime`` before the admission's ``dischtime``, an event before its stay's
``outtime``) gets that date as a *ceiling*: a synthetic date past it is brought back to
it. With both, an event lands inside its stay and a stay inside its admission. Every
other order that holds (a death time after the admission, when the death time is stored
after the date of death) is a *floor*: a synthetic date before it is moved up to it.

The threshold is the pipeline's ``entity.order_threshold``: an order that breaks in more
real rows than that is not imposed (and the evaluation does not count it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from synth.constraints import resolution_ns
from synth.entity import DateLink, date_steps, decode_steps, follows

#: Prefix of a parent row's date among a link's or a ceiling's columns.
PARENT = "parent:"


@dataclass(frozen=True)
class TableDates:
    """How one table's dates are stored and bounded.

    Attributes:
        order: the table's date columns, each after every date it is linked to.
        links: column -> the date (own, or ``PARENT`` + the parent's) it is stored as steps after.
        floors: (column, date) pairs: the column never lies before that (own or parent's) date.
        ceilings: (column, parent date) pairs: the column never lies after the parent's date.
    """

    order: tuple[str, ...] = ()
    links: tuple[DateLink, ...] = ()
    floors: tuple[tuple[str, str], ...] = ()
    ceilings: tuple[tuple[str, str], ...] = ()

    @property
    def linked(self) -> set[str]:
        return {link.column for link in self.links}

    def to_dict(self) -> dict:
        return {
            "order": list(self.order),
            "links": [vars(link) for link in self.links],
            "floors": [list(pair) for pair in self.floors],
            "ceilings": [list(pair) for pair in self.ceilings],
        }

    @classmethod
    def from_dict(cls, data: dict) -> TableDates:
        return cls(
            tuple(data["order"]),
            tuple(DateLink(**link) for link in data["links"]),
            tuple((a, b) for a, b in data["floors"]),
            tuple((a, b) for a, b in data["ceilings"]),
        )


def plan_dates(frame: pd.DataFrame, parent_dates: pd.DataFrame | None, threshold: float) -> TableDates:
    """Links, floors and ceilings of ``frame``'s date columns, from the real rows.

    Args:
        frame: the table's model frame (dates as ``datetime64[ns]``).
        parent_dates: each row's parent's dates, aligned to ``frame`` (None for the root).
        threshold: share of real rows an order must hold in to be imposed.
    """
    dates = [c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])]
    units = {d: resolution_ns(frame[d]) for d in dates}
    parents = {} if parent_dates is None else {PARENT + c: parent_dates[c] for c in parent_dates.columns}

    def holds(low: pd.Series, high: pd.Series, unit: int) -> bool:
        return bool((low.notna() & high.notna()).any()) and follows(low, high, unit)[0] >= threshold

    # A date comes after every own date it follows (pairwise, on the rows that have both: a
    # median over each column's own rows would put a rare death time before the admission).
    after = {d: {o for o in dates if o != d and holds(frame[o], frame[d], units[d])} for d in dates}
    order = sorted(dates, key=lambda d: (len(after[d]), _median_ns(frame[d]), d))
    links, floors, ceilings = [], [], []
    for i, child in enumerate(order):
        unit = units[child]
        before = {d: frame[d] for d in order[:i] if d in after[child]} | {
            p: values for p, values in parents.items() if holds(values, frame[child], unit)
        }
        # The closest predecessor defined wherever the date is carries it as steps; the others are floors.
        bases = [
            (follows(values, frame[child], unit)[1], name)
            for name, values in before.items()
            if not (values.isna() & frame[child].notna()).any()
        ]
        base = min(bases)[1] if bases else None
        if base is not None:
            links.append(DateLink(child, base, unit))
        floors += [(child, name) for name in before if name != base]
        ceilings += [(child, p) for p, values in parents.items() if holds(frame[child], values, unit)]
    return TableDates(tuple(order), tuple(links), tuple(floors), tuple(ceilings))


def encode_dates(frame: pd.DataFrame, parent_dates: pd.DataFrame | None, plan: TableDates) -> pd.DataFrame:
    """``frame`` with each linked date replaced by its (float) steps after its base."""
    out = frame.copy()
    for link in plan.links:
        out[link.column] = date_steps(frame[link.column], _base(frame, parent_dates, link.parent), link.unit_ns)
    return out


def decode_dates(frame: pd.DataFrame, parent_dates: pd.DataFrame | None, plan: TableDates) -> pd.DataFrame:
    """Absolute dates again, each raised to its floors then capped at its ceilings before the
    dates after it are decoded (a ceiling wins a conflict: a child stays inside its parent)."""
    out = frame.copy()
    links = {link.column: link for link in plan.links}
    for column in plan.order:
        if column in links:
            link = links[column]
            out[column] = decode_steps(_base(out, parent_dates, link.parent), out[column], link)
        for child, floor in plan.floors:
            if child == column:
                out[column] = _bounded(out[column], _base(out, parent_dates, floor), np.greater)
        for child, ceiling in plan.ceilings:
            if child == column:
                out[column] = _bounded(out[column], _base(out, parent_dates, ceiling), np.less)
    return out


def _base(frame: pd.DataFrame, parent_dates: pd.DataFrame | None, name: str) -> pd.Series:
    if name.startswith(PARENT):
        return parent_dates[name[len(PARENT) :]].reset_index(drop=True)
    return frame[name].reset_index(drop=True)


def _bounded(values: pd.Series, bound: pd.Series, keep) -> np.ndarray:
    """``values`` where ``keep(value, bound)`` or either is missing, else ``bound``."""
    v = pd.Series(values).to_numpy(dtype="datetime64[ns]")
    b = pd.Series(bound).to_numpy(dtype="datetime64[ns]")
    broken = ~np.isnat(v) & ~np.isnat(b) & ~keep(v, b) & (v != b)
    return np.where(broken, b, v)


def _median_ns(values: pd.Series) -> int:
    ns = values.dropna().to_numpy(dtype="datetime64[ns]").view(np.int64)
    return int(np.median(ns)) if len(ns) else 0
