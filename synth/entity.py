"""Patient-aware layout: which columns belong to the patient, and how dates are encoded.

An extract with an entity key is split into two levels:

* **patients** - one row per patient: the *static* columns (constant within every real
  patient, found automatically or declared), the number of rows, and an *anchor* for
  each row-level date that has nothing before it (the patient's first such date);
* **rows** - the other columns, one row per real row.

Dates are stored relative to the patient, so order and realistic lengths come back:

* a date that follows another in (almost) every real row - admission -> discharge,
  scheduled -> appointment - is stored as the whole number of its own time unit (day,
  second...) after its predecessor, the closest one when several qualify, never
  negative; a declared ``inequality`` constraint forces the link;
* a row-level date with no row-level predecessor is stored as its offset from the
  patient's *anchor*, its first value (so the first event is at offset 0 and the others
  follow it); the anchor belongs to the patient, like the static dates;
* patient-level dates (static ones and anchors) link to each other by the same rule:
  birth -> first admission (the age at it) -> death (the time from the first admission),
  so a death is drawn with the admissions it follows, not decades after them; one with
  no patient-level predecessor (e.g. birth) stays absolute;
* other orders that hold in the real data (a death after every admission) are kept by
  moving the later date forward where a synthetic row breaks them (``repair_orders``).

``age`` constraints derive a column from two dates after generation, so ages always
agree with the birth date and the event date.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from synth.config import AgeConstraint, ColumnKind, InequalityConstraint, PipelineConfig
from synth.constraints import resolution_ns
from synth.errors import ConfigError
from synth.schema import ColumnSpec, Schema

ROWS = "__rows"  # log of the number of rows of the patient
ANCHOR = "__anchor__"
#: position features handed to the row model: relative position, first, last, size
POSITION_FEATURES = 4
_SIZE_SCALE = np.log1p(100.0)  # data-independent scale for the size feature


@dataclass(frozen=True)
class DateLink:
    """``column`` is stored as whole ``unit_ns`` steps after ``parent`` (a date or an anchor).

    Steps are never negative in synthetic data: a link exists because the order holds
    in (almost) every real row, so it is enforced by construction.
    """

    column: str
    parent: str
    unit_ns: int


@dataclass(frozen=True)
class EntityPlan:
    """How an extract splits into patients and rows, and how its dates are encoded."""

    key: str
    static: tuple[str, ...]
    row: tuple[str, ...]
    links: tuple[DateLink, ...] = ()
    orders: tuple[tuple[str, str], ...] = ()  # other (earlier, later) pairs that hold in the real data
    derived: tuple[AgeConstraint, ...] = ()
    order_by: str | None = None
    units: dict = field(default_factory=dict)  # date column -> its unit, for anchors and sorting
    # date column -> [first, last] real instant (ns); empty with DP (not released). A date
    # rebuilt from a step drawn for another patient's parent can land outside it.
    date_ranges: dict = field(default_factory=dict)

    @property
    def anchors(self) -> list[str]:
        return list(dict.fromkeys(link.parent for link in self.links if link.parent.startswith(ANCHOR)))

    def patient_level(self, name: str) -> bool:
        """Whether ``name`` (a column or an anchor) takes one value per patient."""
        return name in self.static or name.startswith(ANCHOR)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["derived"] = [d.model_dump() for d in self.derived]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> EntityPlan:
        return cls(
            key=data["key"],
            static=tuple(data["static"]),
            row=tuple(data["row"]),
            links=tuple(DateLink(**link) for link in data["links"]),
            orders=tuple(tuple(pair) for pair in data["orders"]),
            derived=tuple(AgeConstraint(**d) for d in data["derived"]),
            order_by=data["order_by"],
            units=data["units"],
            date_ranges=data.get("date_ranges", {}),
        )


@dataclass
class Levels:
    """The two levels of one extract (model frames: floats, objects, datetime64[ns])."""

    patients: pd.DataFrame
    rows: pd.DataFrame
    patient_of_row: np.ndarray  # (n_rows,) index into ``patients``
    position: np.ndarray  # (n_rows, POSITION_FEATURES)


# -- planning -------------------------------------------------------------------------------
def plan_entities(frame: pd.DataFrame, keys: np.ndarray, schema: Schema, config: PipelineConfig) -> EntityPlan:
    """Decide the static columns and date links from the real data and the config."""
    modelled = [c for c in schema.modelled]
    derived = tuple(c for c in config.constraints if isinstance(c, AgeConstraint))
    derived_names = {d.column for d in derived}
    codes = pd.factorize(keys)[0]
    if config.entity.static is not None:
        unknown = [c for c in config.entity.static if c not in {m.name for m in modelled}]
        if unknown:
            raise ConfigError(f"config entity.static: {unknown} are not modelled columns")
        static = [c.name for c in modelled if c.name in config.entity.static]
    else:
        static = [c.name for c in modelled if c.name not in derived_names and _constant_within(frame[c.name], codes)]
    row = [c.name for c in modelled if c.name not in static and c.name not in derived_names]
    dates = [c.name for c in modelled if c.kind is ColumnKind.DATETIME and c.name not in derived_names]
    units = {d: resolution_ns(frame[d]) for d in dates}
    declared = [c for c in config.constraints if isinstance(c, InequalityConstraint) and {c.low, c.high} <= set(dates)]
    threshold = config.entity.order_threshold
    links = _link_dates(frame, codes, dates, set(static), units, declared, threshold)
    linked = {(link.parent, link.column) for link in links}
    orders = [
        (first, second)
        for first in dates
        for second in dates
        if first != second
        and (first, second) not in linked
        and follows(frame[first], frame[second], units[second])[0] >= threshold
    ]
    roots = [link.column for link in links if link.parent.startswith(ANCHOR)]
    ranges = {} if config.privacy.enabled else {d: _range_ns(frame[d]) for d in dates if frame[d].notna().any()}
    return EntityPlan(
        key=schema.entity_key,
        static=tuple(static),
        row=tuple(row),
        links=tuple(links),
        orders=tuple(orders),
        derived=derived,
        order_by=roots[0] if roots else next((d for d in dates if d in row), None),
        units=units,
        date_ranges=ranges,
    )


def _range_ns(values: pd.Series) -> list[int]:
    ns = values.dropna().to_numpy(dtype="datetime64[ns]").view(np.int64)
    return [int(ns.min()), int(ns.max())]


def outside_date_ranges(frame: pd.DataFrame, plan: EntityPlan, columns) -> np.ndarray:
    """Rows with a date of ``columns`` outside the real data's range (missing dates pass)."""
    bad = np.zeros(len(frame), dtype=bool)
    for name in columns:
        if name in plan.date_ranges:
            ns = frame[name].to_numpy(dtype="datetime64[ns]").view(np.int64)
            low, high = plan.date_ranges[name]
            bad |= frame[name].notna().to_numpy() & ((ns < low) | (ns > high))
    return bad


def _constant_within(values: pd.Series, codes: np.ndarray) -> bool:
    labels = pd.Series(pd.factorize(values, use_na_sentinel=False)[0])
    return bool((labels.groupby(codes).nunique() <= 1).all())


def _link_dates(frame, codes, dates, static, units, declared, threshold) -> list[DateLink]:
    """Each date's predecessor: declared ones first, then the closest one that (almost) always precedes it.

    Row-level dates link among themselves; one with no row-level predecessor hangs off its
    patient's anchor. Patient-level dates - the static ones and the anchors - then link
    among themselves (an anchor after a birth date, a death date after an anchor).
    """
    forced = {c.high: c.low for c in declared}
    units = units | {ANCHOR + d: units[d] for d in dates}  # an anchor keeps its date's unit
    row_dates = {d: frame[d] for d in dates if d not in static}
    links, patient_dates = [], {d: frame[d] for d in dates if d in static}
    for child, parent in _closest_predecessors(row_dates, forced, units, threshold).items():
        if parent is None:
            parent = ANCHOR + child
            patient_dates[parent] = frame[child].groupby(codes).transform("min")
            # a date declared after a patient-level one: its anchor is, so it is too
            if child in forced and forced[child] in static:
                forced[parent] = forced[child]
        links.append(DateLink(child, parent, units[child]))
    for child, parent in _closest_predecessors(patient_dates, forced, units, threshold).items():
        if parent is not None:
            links.append(DateLink(child, parent, units[child]))
    return _topological(links)


def _closest_predecessors(dates: dict, forced: dict, units: dict, threshold: float) -> dict:
    """Each of ``dates`` (name -> values) -> the closest other one it (almost) always follows, or None."""
    # Earlier-on-average columns come first; a date may only follow an earlier one (no cycles).
    order = sorted(dates, key=lambda d: (_median_ns(dates[d]), d))
    parents = {}
    for rank, child in enumerate(order):
        candidates = []
        own = forced.get(child) if forced.get(child) in dates else None
        for parent in order[:rank] + ([own] if own else []):
            if not _defined_where(dates[parent], dates[child]):
                continue
            share, gap = follows(dates[parent], dates[child], units[child])
            if parent == own or share >= threshold:
                candidates.append((parent != own, gap, parent))
        parents[child] = min(candidates)[2] if candidates else None
    return parents


def _median_ns(values: pd.Series) -> int:
    ns = values.dropna().to_numpy(dtype="datetime64[ns]").view(np.int64)
    return int(np.median(ns)) if len(ns) else 0


def _defined_where(parent: pd.Series, child: pd.Series) -> bool:
    return not bool((parent.isna() & child.notna()).any())


def follows(parent: pd.Series, child: pd.Series, unit: int) -> tuple[float, float]:
    both = parent.notna() & child.notna()
    if not both.any():
        return 0.0, float("inf")
    gaps = date_steps(child[both], parent[both], unit)
    return float(np.mean(gaps >= 0)), float(np.median(np.abs(gaps)))


def _topological(links: list[DateLink]) -> list[DateLink]:
    by_child = {link.column: link for link in links}
    done: list[DateLink] = []
    placed: set[str] = set()
    while len(done) < len(links):
        ready = [
            link for link in links if link.column not in placed and (link.parent not in by_child or link.parent in placed)
        ]
        if not ready:
            cycle = sorted(link.column for link in links if link.column not in placed)
            raise ConfigError(f"the inequality constraints between {cycle} form a cycle")
        done += ready
        placed.update(link.column for link in ready)
    return done


# -- splitting and joining -----------------------------------------------------------------
def split_levels(frame: pd.DataFrame, keys: np.ndarray, plan: EntityPlan) -> Levels:
    """Patients and rows of a real extract, dates encoded relative to the patient."""
    sort_columns = [keys] + ([frame[plan.order_by].to_numpy()] if plan.order_by else [])
    order = np.lexsort(tuple(reversed([pd.factorize(c, sort=True)[0] for c in sort_columns])))
    frame = frame.iloc[order].reset_index(drop=True)
    codes, uniques = pd.factorize(keys[order], sort=True)
    first = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])

    patients = frame.iloc[first][list(plan.static)].reset_index(drop=True)
    patients[ROWS] = np.log(np.bincount(codes))  # log scale: counts run from 1 to thousands
    for anchor in plan.anchors:  # each patient's first value of the date
        patients[anchor] = frame[anchor[len(ANCHOR) :]].groupby(codes).min().to_numpy()
    absolute = patients.copy()
    rows = frame[list(plan.row)].copy()
    for link in plan.links:
        if plan.patient_level(link.column):
            patients[link.column] = date_steps(absolute[link.column], absolute[link.parent], link.unit_ns)
            continue
        parent = absolute[link.parent].to_numpy()[codes] if plan.patient_level(link.parent) else frame[link.parent]
        rows[link.column] = date_steps(frame[link.column], pd.Series(parent), link.unit_ns)
    return Levels(patients=patients, rows=rows, patient_of_row=codes, position=position_features(codes))


def position_features(codes: np.ndarray) -> np.ndarray:
    """(n_rows, 4): relative position in the patient, is first, is last, log size (scaled)."""
    sizes = np.bincount(codes)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    index = np.arange(len(codes)) - starts[codes]
    size = sizes[codes]
    relative = np.where(size > 1, index / np.maximum(size - 1, 1), 0.0)
    return np.stack([relative, index == 0, index == size - 1, np.log1p(size) / _SIZE_SCALE], axis=1).astype(np.float32)


def join_levels(
    patients: pd.DataFrame, rows: pd.DataFrame, patient_of_row: np.ndarray, plan: EntityPlan, clip: bool = False
) -> pd.DataFrame:
    """Absolute values again: static columns broadcast to rows, dates decoded, ages derived.

    ``clip``: each decoded date is moved into the real range before its children are
    decoded from it (see :func:`outside_date_ranges` for finding them first).
    """
    patients = decode_static(patients, plan, clip)
    out = rows.copy()
    for name in plan.static:
        out[name] = patients[name].to_numpy()[patient_of_row]
    for link in plan.links:
        if plan.patient_level(link.column):
            continue
        parent = patients[link.parent].to_numpy()[patient_of_row] if plan.patient_level(link.parent) else out[link.parent]
        out[link.column] = decode_steps(pd.Series(parent), out[link.column], link, plan.date_ranges if clip else {})
    for age in plan.derived:
        out[age.column] = derive_age(out[age.birth], out[age.at], age.top_code)
    return out


def decode_static(patients: pd.DataFrame, plan: EntityPlan, clip: bool = False) -> pd.DataFrame:
    """The patient frame with its linked static dates and anchors decoded to absolute dates."""
    patients = patients.copy()
    for link in plan.links:  # in topological order: a parent is decoded before its children
        if plan.patient_level(link.column):
            ranges = plan.date_ranges if clip else {}
            patients[link.column] = decode_steps(patients[link.parent], patients[link.column], link, ranges)
    return patients


def repair_orders(frame: pd.DataFrame, patient_of_row: np.ndarray, plan: EntityPlan) -> pd.DataFrame:
    """Move later dates forward where a real-data order (``plan.orders``, and each link) is broken.

    A row-level date is raised to its predecessor; a static date to the latest of its
    patient's predecessors, so it stays one value per patient. Dates only move forward,
    so a few passes in date order settle every chain.
    """
    out = frame.copy()
    codes = pd.Series(patient_of_row)
    # Linked dates hold their order by construction, until a repair moves the parent: so the
    # links are repaired too, or a discharge moved forward would leave its death time behind.
    # Anchors are not columns: the orders a link through one stands for are in ``plan.orders``.
    links = [
        (link.parent, link.column)
        for link in plan.links
        if not (link.parent.startswith(ANCHOR) or link.column.startswith(ANCHOR))
    ]
    pairs = list(plan.orders) + links
    for _ in range(len(pairs) + 1):
        changed = False
        for low, high in pairs:
            unit = plan.units[high]
            floor = (out[low].to_numpy(dtype="datetime64[ns]").view(np.int64) // unit) * unit
            floor = np.where(out[low].isna().to_numpy(), np.iinfo(np.int64).min, floor)
            if high in plan.static:  # the latest predecessor of each patient, on every row of it
                floor = pd.Series(floor).groupby(codes).transform("max").to_numpy()
            values = out[high].to_numpy(dtype="datetime64[ns]").view(np.int64)
            broken = out[high].notna().to_numpy() & (values < floor)
            if broken.any():
                if high in plan.static:  # the whole patient moves, not only the offending row
                    broken = pd.Series(broken).groupby(codes).transform("any").to_numpy() & out[high].notna().to_numpy()
                raised = np.where(broken, np.maximum(values, floor), values)
                out[high] = raised.view("datetime64[ns]")
                changed = True
        if not changed:
            break
    return out


def derive_age(birth: pd.Series, at: pd.Series, top_code: int | None) -> np.ndarray:
    """Completed years from ``birth`` to ``at`` (calendar birthdays), capped at ``top_code``; NaN if missing."""
    birth, at = pd.to_datetime(pd.Series(birth)), pd.to_datetime(pd.Series(at))
    before_birthday = (at.dt.month * 100 + at.dt.day) < (birth.dt.month * 100 + birth.dt.day)
    years = (at.dt.year - birth.dt.year - before_birthday.astype(float)).to_numpy(dtype=np.float64)
    return np.minimum(years, top_code) if top_code is not None else years


def date_steps(child: pd.Series, parent: pd.Series, unit: int) -> np.ndarray:
    """Whole ``unit`` steps from ``parent`` (floored to the unit) to ``child``; NaN where missing.

    Both are divided by the unit *before* subtracting: MIMIC's shifted birth dates lie
    300 years before admission, beyond int64 nanoseconds.
    """
    c = pd.Series(child).to_numpy(dtype="datetime64[ns]").view(np.int64)
    p = pd.Series(parent).to_numpy(dtype="datetime64[ns]").view(np.int64)
    missing = pd.isna(pd.Series(child)).to_numpy() | pd.isna(pd.Series(parent)).to_numpy()
    steps = c // unit - p // unit
    return np.where(missing, np.nan, steps.astype(np.float64))


def decode_steps(parent: pd.Series, steps: pd.Series, link: DateLink, ranges: dict | None = None) -> np.ndarray:
    p = pd.Series(parent).to_numpy(dtype="datetime64[ns]").view(np.int64)
    s = np.maximum(pd.to_numeric(pd.Series(steps), errors="coerce").to_numpy(dtype=np.float64), 0)
    missing = np.isnan(s) | pd.isna(pd.Series(parent)).to_numpy()
    # A generated step count can carry a date past what datetime64[ns] holds (1677-2262):
    # keep it on the calendar rather than let the integer wrap around.
    lowest, highest = pd.Timestamp.min.value // link.unit_ns + 1, pd.Timestamp.max.value // link.unit_ns
    if ranges and link.column in ranges:  # the real range, in whole units
        first, last = ranges[link.column]
        lowest, highest = max(lowest, -(-first // link.unit_ns)), min(highest, last // link.unit_ns)
    base = np.where(missing, 0, p // link.unit_ns)
    # Steps are capped (in float, with a margin for its rounding) so the int64 sum cannot wrap.
    room = np.minimum(np.maximum(float(highest) - base.astype(np.float64) - 4096.0, 0.0), 2.0**62)
    steps = np.where(missing, 0, np.round(np.minimum(s, room))).astype(np.int64)
    units = np.clip(base + steps, lowest, highest)
    ns = units * link.unit_ns
    values = ns.view("datetime64[ns]").copy()
    values[missing] = np.datetime64("NaT")
    return values


# -- level schemas ----------------------------------------------------------------------------
def level_schemas(schema: Schema, plan: EntityPlan) -> tuple[Schema, Schema]:
    """Schemas of the patient and row frames (encoded dates become integer step counts)."""
    encoded = {link.column for link in plan.links}
    steps = lambda name: ColumnSpec(name, ColumnKind.NUMERICAL, str(pa.int64()))  # noqa: E731

    def spec(name: str) -> ColumnSpec:
        return steps(name) if name in encoded else schema[name]

    anchors = [
        steps(a) if a in encoded else ColumnSpec(a, ColumnKind.DATETIME, schema[a[len(ANCHOR) :]].arrow_type)
        for a in plan.anchors
    ]
    patient_columns = [spec(n) for n in plan.static] + anchors + [ColumnSpec(ROWS, ColumnKind.NUMERICAL, "double")]
    row_columns = [spec(n) for n in plan.row]
    return Schema(columns=tuple(patient_columns)), Schema(columns=tuple(row_columns))
