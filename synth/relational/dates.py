"""Dates across tables: a child's dates stored as steps after its own or its parent's dates.

:mod:`synth.entity` stores a date as whole steps of its unit after the date it follows in
(almost) every real row. Here the candidates also include the dates of the row's
**parent** row (an ICU stay's ``intime`` after its admission's ``admittime``, an event's
``charttime`` after its stay's ``intime``), so the order across tables holds by
construction: a step is never negative. A date that (almost) always lies **before** a
parent date (``outtime`` before the admission's ``dischtime``, an event before its stay's
``outtime``) gets that date as a *ceiling*: a synthetic date past it is brought back to
it. With both, an event lands inside its stay and a stay inside its admission.

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
        ceilings: (column, parent date) pairs: the column never lies after the parent's date.
    """

    order: tuple[str, ...] = ()
    links: tuple[DateLink, ...] = ()
    ceilings: tuple[tuple[str, str], ...] = ()

    @property
    def linked(self) -> set[str]:
        return {link.column for link in self.links}

    def to_dict(self) -> dict:
        return {
            "order": list(self.order),
            "links": [vars(link) for link in self.links],
            "ceilings": [list(pair) for pair in self.ceilings],
        }

    @classmethod
    def from_dict(cls, data: dict) -> TableDates:
        return cls(
            tuple(data["order"]),
            tuple(DateLink(**link) for link in data["links"]),
            tuple((a, b) for a, b in data["ceilings"]),
        )


def plan_dates(frame: pd.DataFrame, parent_dates: pd.DataFrame | None, threshold: float) -> TableDates:
    """Links and ceilings of ``frame``'s date columns, from the real rows.

    Args:
        frame: the table's model frame (dates as ``datetime64[ns]``).
        parent_dates: each row's parent's dates, aligned to ``frame`` (None for the root).
        threshold: share of real rows an order must hold in to be imposed.
    """
    dates = [c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])]
    parents = {} if parent_dates is None else {PARENT + c: parent_dates[c] for c in parent_dates.columns}
    # Earlier-on-average dates first; a date follows only an earlier one of its row (no cycles).
    order = sorted(dates, key=lambda d: (_median_ns(frame[d]), d))
    links, ceilings = [], []
    for i, child in enumerate(order):
        unit = resolution_ns(frame[child])
        before = {d: frame[d] for d in order[:i]} | parents
        candidates = []
        for name, values in before.items():
            if (values.isna() & frame[child].notna()).any():
                continue  # a step needs its base wherever the date is present
            share, gap = follows(values, frame[child], unit)
            if share >= threshold:
                candidates.append((gap, name))
        if candidates:
            links.append(DateLink(child, min(candidates)[1], unit))
        for name, values in parents.items():
            share, _ = follows(frame[child], values, unit)
            both = values.notna() & frame[child].notna()
            if both.any() and share >= threshold:
                ceilings.append((child, name))
    return TableDates(tuple(order), tuple(links), tuple(ceilings))


def encode_dates(frame: pd.DataFrame, parent_dates: pd.DataFrame | None, plan: TableDates) -> pd.DataFrame:
    """``frame`` with each linked date replaced by its (float) steps after its base."""
    out = frame.copy()
    for link in plan.links:
        out[link.column] = date_steps(frame[link.column], _base(frame, parent_dates, link.parent), link.unit_ns)
    return out


def decode_dates(frame: pd.DataFrame, parent_dates: pd.DataFrame | None, plan: TableDates) -> pd.DataFrame:
    """Absolute dates again, each one capped at its ceilings before the dates after it are decoded."""
    out = frame.copy()
    links = {link.column: link for link in plan.links}
    for column in plan.order:
        if column in links:
            link = links[column]
            out[column] = decode_steps(_base(out, parent_dates, link.parent), out[column], link)
        for child, ceiling in plan.ceilings:
            if child == column:
                out[column] = _capped(out[column], _base(out, parent_dates, ceiling))
    return out


def _base(frame: pd.DataFrame, parent_dates: pd.DataFrame | None, name: str) -> pd.Series:
    if name.startswith(PARENT):
        return parent_dates[name[len(PARENT) :]].reset_index(drop=True)
    return frame[name].reset_index(drop=True)


def _capped(values: pd.Series, ceiling: pd.Series) -> np.ndarray:
    """``values`` no later than ``ceiling`` (a missing ceiling caps nothing)."""
    v = pd.Series(values).to_numpy(dtype="datetime64[ns]")
    c = pd.Series(ceiling).to_numpy(dtype="datetime64[ns]")
    return np.where(~np.isnat(c) & (v > c), c, v)


def _median_ns(values: pd.Series) -> int:
    ns = values.dropna().to_numpy(dtype="datetime64[ns]").view(np.int64)
    return int(np.median(ns)) if len(ns) else 0
