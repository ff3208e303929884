"""Learning the transforms' domain with differential privacy.

Without DP the transforms learn ranges, GMM modes, category sets and null rates from
the real rows, and publish them in the model. With DP on, they learn them from a
*DP marginal sample* instead: every column is summarised by a differentially private
mechanism, a sample is drawn from those summaries (post-processing: free), and RDT is
fitted on that sample. The real rows are then only ever seen through DP-SGD.

Mechanisms, per column, with ``epsilon_c`` = the transform budget / number of columns:

* numbers and dates: lower and upper bounds = the 0.5th and 99.5th percentiles by the
  exponential mechanism over the gaps between sorted values (Smith 2011), measured on an
  ``asinh`` scale so one data-independent outer range [-50, 50] covers 1e-20 to 1e21
  (epsilon_c/4 each); then a Laplace-noised histogram of 64 bins plus a null bin
  (epsilon_c/2);
* categories and booleans: a Laplace-noised count per category (null is a category),
  released only above ``1 + ln(1 / (2 delta_c)) / epsilon_c``, so a category held by one
  patient appears with probability at most ``delta_c``: rare real values never appear.

Sensitivity is 1 for every mechanism because each privacy unit has total weight 1: a
patient's ``n`` rows weigh ``1/n`` each (rows are units of weight 1 when there is no
entity key). Budgets add up (basic composition): the transforms spend
``(epsilon_t, delta_t)`` and training the rest; both are reported.

References: Smith, "Privacy-preserving statistical estimation with optimal convergence
rates", STOC 2011; Dwork & Roth, "The Algorithmic Foundations of Differential
Privacy", 2014 (Laplace mechanism, thresholded histograms).
"""

from __future__ import annotations

from collections.abc import Mapping

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from synth.config import ColumnKind
from synth.schema import ColumnSpec

OUTER = 50.0  # asinh scale: covers |x| up to ~2.6e21
LOWER_Q, UPPER_Q = 0.005, 0.995
BINS = 64
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


@dataclass
class DPDomain:
    """The released summaries and the budget they spent."""

    epsilon: float
    delta: float
    columns: dict[str, ColumnDomain]

    def to_dict(self) -> dict:
        return {"epsilon": self.epsilon, "delta": self.delta, "columns": {k: asdict(v) for k, v in self.columns.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> DPDomain:
        columns = {k: ColumnDomain(**v) for k, v in data["columns"].items()}
        return cls(epsilon=data["epsilon"], delta=data["delta"], columns=columns)


def learn_domain(
    frame: pd.DataFrame,
    columns: list[ColumnSpec],
    epsilon: float,
    delta: float,
    weights: np.ndarray,
    rng: np.random.Generator,
    public_ranges: Mapping[str, tuple[float, float]] | None = None,
) -> DPDomain:
    """Release every column's summary with DP; ``weights`` sum to 1 per privacy unit.

    ``public_ranges`` gives bounds known without looking at the data (from the config):
    those columns skip the quantile mechanism and are clipped to them.
    """
    epsilon_c = epsilon / max(len(columns), 1)
    delta_c = delta / max(len(columns), 1)
    public_ranges = public_ranges or {}
    released = {}
    for spec in columns:
        values = frame[spec.name]
        if spec.kind in (ColumnKind.NUMERICAL, ColumnKind.DATETIME):
            bounds = public_ranges.get(spec.name)
            released[spec.name] = _numeric(_as_number(values), weights, epsilon_c, rng, bounds)
        else:
            released[spec.name] = _categorical(values, weights, epsilon_c, delta_c, rng)
    return DPDomain(epsilon=epsilon, delta=delta, columns=released)


def sample_frame(domain: DPDomain, columns: list[ColumnSpec], rng: np.random.Generator) -> pd.DataFrame:
    """A frame drawn column by column from the released summaries (what RDT is fitted on)."""
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
    """
    out = frame.copy()
    for spec in columns:
        column = domain.columns[spec.name]
        values = out[spec.name]
        if column.kind == "numeric":
            numbers = _as_number(values)
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
    values: np.ndarray, weights: np.ndarray, epsilon: float, rng, bounds: tuple[float, float] | None = None
) -> ColumnDomain:
    present = ~np.isnan(values)
    if bounds is None:
        low = dp_quantile(values[present], weights[present], LOWER_Q, epsilon / 4, rng)
        high = dp_quantile(values[present], weights[present], UPPER_Q, epsilon / 4, rng)
    else:
        low, high = bounds
    low, high = min(low, high), max(low, high)
    # One histogram over [low, high] plus a null bin: each unit's weight lands in one bin.
    edges = np.linspace(low, high, BINS + 1) if high > low else np.array([low, low + 1.0])
    counts, _ = np.histogram(np.clip(values[present], low, high), bins=edges, weights=weights[present])
    counts = np.append(counts, weights[~present].sum())
    noisy = np.clip(counts + rng.laplace(0, 2 / epsilon, len(counts)), 0, None)
    total = noisy.sum()
    return ColumnDomain(
        kind="numeric",
        low=float(low),
        high=float(high),
        null_share=float(noisy[-1] / total) if total > 0 else 0.0,
        histogram=noisy[:-1].tolist(),
    )


def dp_quantile(values: np.ndarray, weights: np.ndarray, q: float, epsilon: float, rng: np.random.Generator) -> float:
    """The ``q`` quantile of weighted ``values`` by the exponential mechanism (sensitivity 1).

    Candidates are the gaps between sorted values on an ``asinh`` scale, inside the
    data-independent range [-50, 50]; a gap is chosen with probability proportional to
    its width times ``exp(-epsilon |rank - q W| / 2)`` and the output is uniform in it.
    """
    scaled = np.clip(np.arcsinh(values), -OUTER, OUTER)
    order = np.argsort(scaled, kind="stable")
    points = np.concatenate([[-OUTER], scaled[order], [OUTER]])
    ranks = np.concatenate([[0.0], np.cumsum(weights[order])])  # weight at or below each gap's left end
    total = ranks[-1]
    widths = np.diff(points)
    with np.errstate(divide="ignore"):
        log_score = np.log(widths) - epsilon * np.abs(ranks - q * total) / 2
    choice = int(np.argmax(log_score + rng.gumbel(size=len(log_score))))  # Gumbel-max = exponential mechanism
    return float(np.sinh(rng.uniform(points[choice], points[choice + 1])))


def _categorical(values: pd.Series, weights: np.ndarray, epsilon: float, delta: float, rng) -> ColumnDomain:
    keys = values.astype(object).where(values.notna(), None)
    counts = pd.Series(weights).groupby(keys.to_numpy(), dropna=False).sum()
    threshold = 1 + math.log(1 / (2 * delta)) / epsilon
    noisy = counts.to_numpy() + rng.laplace(0, 1 / epsilon, len(counts))
    kept = noisy > threshold
    if not kept.any():  # nothing clears the bar: release the single noisiest-largest category
        kept[np.argmax(noisy)] = True
    categories = [None if _is_null(c) else c for c in counts.index[kept]]
    shares = noisy[kept] / noisy[kept].sum()
    return ColumnDomain(kind="categorical", categories=categories, shares=shares.tolist())


def _as_number(values: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(values):
        ns = values.to_numpy(dtype="datetime64[ns]").view(np.int64).astype(np.float64)
        return np.where(values.isna().to_numpy(), np.nan, ns / 1e9)  # seconds
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)


def _integer(spec: ColumnSpec) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(spec.arrow)


def _is_null(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
