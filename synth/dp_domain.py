"""Learning the transforms' domain with differential privacy.

Without DP the transforms learn ranges, GMM modes, category sets and null rates from
the real rows, and publish them in the model. With DP on, they learn them from a
*DP marginal sample* instead: every column is summarised by a differentially private
mechanism, a sample is drawn from those summaries (post-processing: free, and seeded),
and RDT is fitted on that sample. The real rows are then only ever seen through DP-SGD.

Mechanisms, per column, with ``epsilon_c`` = the column's share of the domain's budget.
Shares follow what the config declares, never the data (:func:`budget_weights`): each
column weighs the square root of the number of noisy counts it releases (the split that
minimises the summed noise of all columns' counts), a column whose bounds or values must
be learnt twice a public range's histogram, so a published code list of a thousand codes
gets far more than a yes/no column, and a declared range half of an undeclared one.

* numbers and dates: lower and upper bounds = the 0.5th and 99.5th percentiles by the
  exponential mechanism over the gaps between sorted values (Smith 2011), measured on an
  ``asinh`` scale inside a data-independent outer range: [-50, 50] (1e-20 to 1e21), cut
  to what the column's type holds - an integer type's range, the calendar of
  ``datetime64[ns]`` (epsilon_c/4 each). A ``public_range`` declared in the config
  replaces both. Then a Laplace-noised histogram of 64 bins plus a null bin (epsilon_c/2,
  or all of epsilon_c when the range is public);
* categories and booleans: a Laplace-noised count per category (scale 1/epsilon_c).
  *Public* candidates - null, ``True``/``False`` of a boolean column, the column's
  declared ``public_values`` and ``public_codes`` (:mod:`synth.codes`) - are released
  when their noisy count passes ``PUBLIC_CUT / epsilon_c`` (two noise scales: a code no
  one holds passes with probability e^-2 / 2, so a long published list releases few
  strays), or, when none does, when it is positive; any
  other value only above the threshold ``1 + ln(1 / (2 delta')) / epsilon_c``. Nothing
  else is ever released: no category clears the bar and none is public -> the column is
  all null. A value held by a single unit therefore appears with probability at most
  ``delta'`` (see :func:`category_threshold` for delta' and the several-values case).

Sensitivity is 1 for every mechanism because each privacy unit has total weight 1: a
patient's ``n`` rows weigh ``1/n`` each (rows are units of weight 1 when there is no
entity key). Budgets add up (basic composition): the domain spends ``(epsilon, delta)``
and is reported as the "transforms" part. Every draw here is privacy noise and comes
from the secure generator the caller passes (:func:`synth.privacy.secure_numpy`).

References: Smith, "Privacy-preserving statistical estimation with optimal convergence
rates", STOC 2011; Dwork & Roth, "The Algorithmic Foundations of Differential
Privacy", 2014 (Laplace mechanism, thresholded histograms); Wilson et al.,
"Differentially private SQL with bounded user contribution", PoPETs 2020 (contribution
bounds for thresholded counts).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from synth import codes
from synth.config import ColumnKind, ColumnOverride
from synth.errors import ConfigError
from synth.frames import integer_range
from synth.schema import ColumnSpec

OUTER = 50.0  # asinh scale: covers |x| up to ~2.6e21
LOWER_Q, UPPER_Q = 0.005, 0.995
BINS = 64
#: Budget weights (see :func:`budget_weights`): a public range releases the histogram's
#: BINS + 1 counts; a learnt column (bounds and histogram, or an unknown category set)
#: twice that; public values their number of counts (values and null).
PUBLIC_RANGE_WEIGHT = math.sqrt(BINS + 1)
LEARNT_WEIGHT = 2 * PUBLIC_RANGE_WEIGHT
#: A public value is released when its noisy count passes this many noise scales (1/epsilon_c).
PUBLIC_CUT = 2.0
SAMPLE_ROWS = 20_000


@dataclass
class ColumnDomain:
    """What DP released about one column."""

    kind: str  # "numeric" or "categorical"
    low: float | None = None
    high: float | None = None
    null_share: float = 0.0
    histogram: list[float] = field(default_factory=list)
    categories: list = field(default_factory=list)
    shares: list[float] = field(default_factory=list)
    bounds: str = ""  # numeric: "dp quantiles", "public" (declared in the config)
    threshold: float | None = None  # categorical: the noisy count a non-public value had to pass


@dataclass
class DPDomain:
    """The released summaries and the budget they spent."""

    epsilon: float
    delta: float
    columns: dict[str, ColumnDomain]
    max_values_per_unit: int = 1

    def to_dict(self) -> dict:
        return {
            "epsilon": self.epsilon,
            "delta": self.delta,
            "max_values_per_unit": self.max_values_per_unit,
            "columns": {k: asdict(v) for k, v in self.columns.items()},
        }

    @classmethod
    def from_dict(cls, data: dict) -> DPDomain:
        columns = {k: ColumnDomain(**v) for k, v in data["columns"].items()}
        return cls(
            epsilon=data["epsilon"],
            delta=data["delta"],
            columns=columns,
            max_values_per_unit=data.get("max_values_per_unit", 1),
        )


@dataclass(frozen=True)
class Public:
    """What the config declares public about a table's columns (known without the data)."""

    values: Mapping[str, list] = field(default_factory=dict)
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)


def declared_public(columns: list[ColumnSpec], overrides: Mapping[str, ColumnOverride]) -> Public:
    """The ``public_values`` and ``public_range`` of ``columns``, checked against their kinds.

    Ranges of datetime columns are returned in seconds since the epoch (UTC), as the
    mechanisms measure them; values are converted to the column's own type.
    """
    values, ranges = {}, {}
    for spec in columns:
        override = overrides.get(spec.name)
        if override is None:
            continue
        if override.public_values is not None or override.public_codes is not None:
            field_name = "public_values" if override.public_values is not None else "public_codes"
            if spec.kind not in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
                raise ConfigError(f"columns.{spec.name}.{field_name}: {spec.name!r} is {spec.kind.value}, not categorical")
            listed = [_as_value(v, spec) for v in override.public_values or []]
            coded = [_as_value(v, spec) for v in codes.public_codes(override.public_codes)] if override.public_codes else []
            values[spec.name] = list(dict.fromkeys(listed + coded))
        if override.public_range is not None:
            if spec.kind not in (ColumnKind.NUMERICAL, ColumnKind.DATETIME):
                raise ConfigError(f"columns.{spec.name}.public_range: {spec.name!r} is {spec.kind.value}, not numeric")
            low, high = (_as_number(v, spec, f"columns.{spec.name}.public_range") for v in override.public_range)
            if not low < high:
                raise ConfigError(f"columns.{spec.name}.public_range: low must be below high")
            ranges[spec.name] = (low, high)
    return Public(values=values, ranges=ranges)


def learn_domain(
    frame: pd.DataFrame,
    columns: list[ColumnSpec],
    epsilon: float,
    delta: float,
    rng: np.random.Generator,
    units: np.ndarray | None = None,
    max_values_per_unit: int = 1,
    public: Public | None = None,
) -> DPDomain:
    """Release every column's summary with DP.

    Args:
        frame: the real rows of ``columns``.
        columns: the modelled columns; each gets its share of the budget (:func:`budget_weights`).
        epsilon: this domain's epsilon.
        delta: this domain's delta (spent by category thresholds only).
        rng: a secure generator: every draw here is privacy noise.
        units: each row's privacy unit (e.g. its patient); ``None``: each row is one.
        max_values_per_unit: the contribution bound: a unit counts towards at most this
            many distinct values of a column (those holding most of its rows).
        public: values and ranges declared public in the config.
    """
    public = public or Public()
    max_values_per_unit = max_values_per_unit if units is not None else 1
    shares = budget_weights(columns, public)
    if units is None:
        weights = np.ones(len(frame))
    else:
        units, sizes = np.unique(units, return_inverse=True, return_counts=True)[1:]
        weights = 1.0 / sizes[units]
    released = {}
    for spec in columns:
        values = frame[spec.name]
        epsilon_c, delta_c = epsilon * shares[spec.name], delta * shares[spec.name]
        if spec.kind in (ColumnKind.NUMERICAL, ColumnKind.DATETIME):
            released[spec.name] = _numeric(
                _numbers(values), weights, epsilon_c, rng, public.ranges.get(spec.name), _type_range(spec)
            )
        else:
            candidates = public.values.get(spec.name, []) + _type_values(spec)
            released[spec.name] = _categorical(
                values, units, weights, epsilon_c, delta_c, rng, candidates, max_values_per_unit
            )
    return DPDomain(epsilon=epsilon, delta=delta, columns=released, max_values_per_unit=max_values_per_unit)


def column_weights(columns: list[ColumnSpec], public: Public) -> dict[str, float]:
    """Each column's weight in the domain's budget, from the config alone (not normalised).

    The square root of the number of noisy counts the column releases: with Laplace noise
    of scale 1/epsilon_c on k_c counts, the summed noise sum_c k_c / epsilon_c under a fixed
    total epsilon is smallest for epsilon_c proportional to sqrt(k_c). A learnt column's
    count is unknown before the data is seen; it weighs twice a public range's histogram.
    """
    weights = {}
    for spec in columns:
        if spec.name in public.ranges:
            weights[spec.name] = PUBLIC_RANGE_WEIGHT
        elif spec.name in public.values:
            weights[spec.name] = math.sqrt(len(public.values[spec.name]) + 1)
        elif spec.kind is ColumnKind.BOOLEAN:
            weights[spec.name] = math.sqrt(3)  # True, False, null
        else:
            weights[spec.name] = LEARNT_WEIGHT
    return weights


def budget_weights(columns: list[ColumnSpec], public: Public) -> dict[str, float]:
    """Each column's share of the domain's (epsilon, delta), from the config alone; they sum to 1.

    Splitting by what the config declares (not by anything measured) keeps the split itself
    free of privacy cost; basic composition holds for any fixed shares.
    """
    weights = column_weights(columns, public)
    total = sum(weights.values())
    return {name: weight / total for name, weight in weights.items()}


def sample_frame(domain: DPDomain, columns: list[ColumnSpec], rng: np.random.Generator) -> pd.DataFrame:
    """A frame drawn column by column from the released summaries (what RDT is fitted on).

    Post-processing of released values only, so ``rng`` may be seeded: the sample is
    reproducible from the seed and the released domain.
    """
    data = {}
    for spec in columns:
        column = domain.columns[spec.name]
        if column.kind == "categorical":
            picks = rng.choice(len(column.categories), size=SAMPLE_ROWS, p=np.asarray(column.shares))
            data[spec.name] = np.array(column.categories, dtype=object)[picks]
            continue
        values = _histogram_sample(column, rng)
        values = np.concatenate([[column.low, column.high], values[2:]])  # the released range, exactly
        if spec.kind is ColumnKind.DATETIME:
            seconds = np.round(values).astype(np.int64)
            series = pd.Series(seconds * 1_000_000_000, dtype="int64").astype("datetime64[ns]")
        else:
            series = pd.Series(np.round(values) if _integer(spec) else values, dtype="float64")
        nulls = rng.random(SAMPLE_ROWS) < column.null_share
        nulls[:2] = False
        data[spec.name] = series.mask(nulls)
    return pd.DataFrame(data)


def _histogram_sample(column: ColumnDomain, rng: np.random.Generator) -> np.ndarray:
    counts = np.asarray(column.histogram)
    if column.high <= column.low or counts.sum() <= 0:
        return np.full(SAMPLE_ROWS, column.low)
    edges = np.linspace(column.low, column.high, len(counts) + 1)
    picks = rng.choice(len(counts), size=SAMPLE_ROWS, p=counts / counts.sum())
    return rng.uniform(edges[picks], edges[picks + 1])


def restrict(frame: pd.DataFrame, domain: DPDomain, columns: list[ColumnSpec], rng: np.random.Generator) -> pd.DataFrame:
    """Fit real rows into the released domain before they are transformed for training.

    Numbers are clipped to the released bounds; a category that was not released (or a
    null where nulls were not released) is replaced by a draw from the released shares.
    Those draws touch real rows, so ``rng`` must be secure under DP: with a known seed,
    one more unit would shift every later replacement, and the training data of two
    neighbouring extracts would differ in more than one unit.
    """
    out = frame.copy()
    for spec in columns:
        column = domain.columns[spec.name]
        values = out[spec.name]
        if column.kind == "numeric":
            numbers = _numbers(values)
            if spec.kind is ColumnKind.DATETIME:
                clipped = np.round(np.clip(numbers, column.low, column.high))
                seconds = pd.Series(clipped).astype("Int64")
                out[spec.name] = pd.to_datetime(seconds, unit="s").astype("datetime64[ns]").to_numpy()
            else:
                out[spec.name] = np.clip(numbers, column.low, column.high)
            continue
        allowed = set(c for c in column.categories if not _is_null(c))
        null_allowed = any(_is_null(c) for c in column.categories)
        outside = ~values.isin(allowed) & ~(values.isna() & null_allowed)
        if outside.any():
            picks = rng.choice(len(column.categories), size=int(outside.sum()), p=np.asarray(column.shares))
            replacement = np.array(column.categories, dtype=object)[picks]
            values = values.astype(object).copy()
            values[outside.to_numpy()] = replacement
            out[spec.name] = values
    return out


# -- mechanisms ------------------------------------------------------------------------------
def _numeric(
    values: np.ndarray,
    weights: np.ndarray,
    epsilon: float,
    rng: np.random.Generator,
    bounds: tuple[float, float] | None,
    type_range: tuple[float, float] | None,
) -> ColumnDomain:
    present = ~np.isnan(values)
    if bounds is None:
        outer = (-OUTER, OUTER) if type_range is None else tuple(np.clip(np.arcsinh(type_range), -OUTER, OUTER))
        low = dp_quantile(values[present], weights[present], LOWER_Q, epsilon / 4, rng, outer)
        high = dp_quantile(values[present], weights[present], UPPER_Q, epsilon / 4, rng, outer)
    else:
        low, high = bounds
    if type_range is not None:  # sinh(asinh(x)) can round past the type's last value
        low, high = np.clip([low, high], *type_range)
    low, high = min(low, high), max(low, high)
    # One histogram over [low, high] plus a null bin: each unit's weight lands in one bin.
    edges = np.linspace(low, high, BINS + 1) if high > low else np.array([low, low + 1.0])
    counts, _ = np.histogram(np.clip(values[present], low, high), bins=edges, weights=weights[present])
    counts = np.append(counts, weights[~present].sum())
    histogram_epsilon = epsilon if bounds is not None else epsilon / 2
    noisy = np.clip(counts + rng.laplace(0, 1 / histogram_epsilon, len(counts)), 0, None)
    total = noisy.sum()
    return ColumnDomain(
        kind="numeric",
        low=float(low),
        high=float(high),
        null_share=float(noisy[-1] / total) if total > 0 else 0.0,
        histogram=noisy[:-1].tolist(),
        bounds="dp quantiles" if bounds is None else "public",
    )


def dp_quantile(
    values: np.ndarray,
    weights: np.ndarray,
    q: float,
    epsilon: float,
    rng: np.random.Generator,
    outer: tuple[float, float] = (-OUTER, OUTER),
) -> float:
    """The ``q`` quantile of weighted ``values`` by the exponential mechanism (sensitivity 1).

    Candidates are the gaps between sorted values on an ``asinh`` scale, inside the
    data-independent range ``outer`` (asinh scale); a gap is chosen with probability
    proportional to its width times ``exp(-epsilon |rank - q W| / 2)`` and the output is
    uniform in it, so it never leaves ``outer``.
    """
    scaled = np.clip(np.arcsinh(values), *outer)
    order = np.argsort(scaled, kind="stable")
    points = np.concatenate([[outer[0]], scaled[order], [outer[1]]])
    ranks = np.concatenate([[0.0], np.cumsum(weights[order])])  # weight at or below each gap's left end
    total = ranks[-1]
    widths = np.diff(points)
    with np.errstate(divide="ignore"):
        log_score = np.log(widths) - epsilon * np.abs(ranks - q * total) / 2
    choice = int(np.argmax(log_score + rng.gumbel(size=len(log_score))))  # Gumbel-max = exponential mechanism
    return float(np.sinh(rng.uniform(points[choice], points[choice + 1])))


def category_threshold(epsilon: float, delta: float, max_values_per_unit: int) -> float:
    """The noisy count a non-public value must pass to be released.

    A value held only by one unit, with weight ``w <= 1``, passes ``T`` with probability
    ``exp(-epsilon (T - w)) / 2``. A unit may hold up to ``L = max_values_per_unit``
    values no one else has, with weights summing to at most 1; the chance that any of them
    is released is at most ``delta' (1 + (L - 1) exp(-epsilon))`` for ``T = 1 + ln(1 /
    (2 delta')) / epsilon`` (the sum of ``exp(epsilon w_i)`` is largest when one weight is
    1 and the rest 0). So ``delta' = delta / (1 + (L - 1) exp(-epsilon))``: the per-value
    deltas add up to the column's ``delta``, not ``L`` times it.
    """
    per_value = delta / (1 + (max_values_per_unit - 1) * math.exp(-epsilon))
    return 1 + math.log(1 / (2 * per_value)) / epsilon


def _categorical(
    values: pd.Series,
    units: np.ndarray | None,
    weights: np.ndarray,
    epsilon: float,
    delta: float,
    rng: np.random.Generator,
    public: list,
    max_values_per_unit: int,
) -> ColumnDomain:
    labels, uniques = pd.factorize(values.astype(object), use_na_sentinel=True)  # -1: null
    counts = _bounded_counts(labels, units, weights, max_values_per_unit)
    seen = {_native(v): counts.get(i, 0.0) for i, v in enumerate(uniques)}
    public_set = dict.fromkeys(_native(v) for v in public)  # ordered as declared
    candidates = [None, *seen, *(v for v in public_set if v not in seen)]  # null is always public
    exact = np.array([counts.get(-1, 0.0), *seen.values(), *[0.0] * (len(candidates) - 1 - len(seen))])
    noisy = exact + rng.laplace(0, 1 / epsilon, len(candidates))
    threshold = category_threshold(epsilon, delta, max_values_per_unit)
    is_public = np.array([True] + [c in public_set for c in candidates[1:]])
    public_kept = noisy > PUBLIC_CUT / epsilon
    if not (public_kept & is_public).any():  # noise everywhere: the public values it left positive
        public_kept = noisy > 0
    kept = np.where(is_public, public_kept, noisy > threshold)
    if not kept.any():  # nothing public has a positive count and nothing clears the bar: all null
        return ColumnDomain(kind="categorical", categories=[None], shares=[1.0], threshold=threshold)
    shares = noisy[kept] / noisy[kept].sum()
    categories = [c for c, k in zip(candidates, kept) if k]
    return ColumnDomain(kind="categorical", categories=categories, shares=shares.tolist(), threshold=threshold)


def _bounded_counts(labels: np.ndarray, units: np.ndarray | None, weights: np.ndarray, limit: int) -> dict[int, float]:
    """Weighted count per label, each unit counting towards at most ``limit`` labels (its heaviest).

    Ties are broken by the order of the unit's own rows, so what a unit contributes
    depends on that unit alone. ``units`` ``None``: every row is a unit of weight 1.
    """
    if units is None:
        return pd.Series(weights).groupby(labels).sum().to_dict()
    pairs = pd.DataFrame({"unit": units, "label": labels, "weight": weights})
    per_unit = pairs.groupby(["unit", "label"], sort=False)["weight"].sum().reset_index()
    rank = per_unit.groupby("unit", sort=False)["weight"].rank(method="first", ascending=False)
    return per_unit[rank <= limit].groupby("label")["weight"].sum().to_dict()


def _numbers(values: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(values):
        ns = values.to_numpy(dtype="datetime64[ns]").view(np.int64).astype(np.float64)
        return np.where(values.isna().to_numpy(), np.nan, ns / 1e9)  # seconds
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)


def _type_range(spec: ColumnSpec) -> tuple[float, float] | None:
    """What the column's type can hold, as floats inside it (``None``: any float)."""
    if spec.kind is ColumnKind.DATETIME:  # model frames hold datetime64[ns]; seconds since the epoch
        return float(math.ceil(pd.Timestamp.min.value / 1e9)), float(math.floor(pd.Timestamp.max.value / 1e9))
    arrow = spec.arrow.value_type if pa.types.is_dictionary(spec.arrow) else spec.arrow
    return integer_range(arrow) if pa.types.is_integer(arrow) else None


def _type_values(spec: ColumnSpec) -> list:
    """Values a column's type makes public: False and True for an Arrow boolean."""
    return [False, True] if pa.types.is_boolean(spec.arrow) else []


def _as_value(value, spec: ColumnSpec):
    """A declared public value in the column's own type (as model frames hold it)."""
    arrow = spec.arrow.value_type if pa.types.is_dictionary(spec.arrow) else spec.arrow
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
        return str(value)
    if pa.types.is_boolean(arrow):
        return bool(value)
    if pa.types.is_integer(arrow) or pa.types.is_floating(arrow):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"columns.{spec.name}.public_values: {value!r} is not a number") from None
        return int(number) if pa.types.is_integer(arrow) and number.is_integer() else number
    return value


def _as_number(value, spec: ColumnSpec, where: str) -> float:
    if spec.kind is ColumnKind.DATETIME:
        try:
            stamp = pd.Timestamp(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: {value!r} is not a date") from None
        stamp = stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp
        return stamp.value / 1e9
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {value!r} is not a number") from None


def _native(value):
    """A Python scalar: JSON-safe, and equal to itself read back from the released JSON."""
    return value.item() if isinstance(value, np.generic) else value


def _integer(spec: ColumnSpec) -> bool:
    return pa.types.is_integer(spec.arrow)


def _is_null(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
