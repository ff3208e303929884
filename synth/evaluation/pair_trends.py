"""Column pair trends: SDMetrics' pair metrics, with the real data's bins and no unseeded subsample.

Definition (SDMetrics' *Column Pair Trends*, QualityReport methodology): for every pair of
columns, ``CorrelationSimilarity`` (1 - |Pearson r_real - r_synthetic| / 2) when both are
numbers or dates, else ``ContingencySimilarity`` (1 - total variation distance between the
two contingency tables), numbers and dates cut into 10 bins. The score is the mean over the
pairs whose real association is worth keeping: |r_real| > 0.5, or Cramér's V > 0.3 (the
report's thresholds); when no pair clears them, the mean over every pair.

Why not the report itself (SDMetrics 0.32): its ``ColumnPairTrends`` cuts the real and the
synthetic column each on *its own* range, so a synthetic column that lacks the real data's
rare extremes is binned on shifted edges and every row lands in the "wrong" bin (diabetes-130's
``number_diagnoses``: real 1-16 with 0.1% above 9, a VAE's 1-9: the pair with ``diag_3``
scored 0.20 where the same contingency tables on common bins score 0.83; a model that
resamples the real column scores unharmed). SDMetrics' own design (sdv-dev/SDMetrics#368)
and its ``discretize_column`` take the edges from the real data and open both ends; that is
what is done here. The report also subsamples 50,000 rows with an unseeded ``sample()``,
so its score changed from run to run on the same data; here every row is used.
Reference: SDMetrics documentation, "Quality Report: What's included" (DataCebo).
"""

from __future__ import annotations

import datetime as dt
import itertools
import warnings

import numpy as np
import pandas as pd
from scipy.stats.contingency import association
from sdmetrics.column_pairs import ContingencySimilarity, CorrelationSimilarity
from sdmetrics.errors import ConstantInputError, IncomputableMetricError
from sdmetrics.utils import discretize_column

from synth.config import ColumnKind
from synth.schema import Schema

#: SDMetrics' QualityReport thresholds: pairs with a weaker real association are not scored.
REAL_CORRELATION_THRESHOLD = 0.5
REAL_ASSOCIATION_THRESHOLD = 0.3
BINS = 10
_CONTINUOUS = (ColumnKind.NUMERICAL, ColumnKind.DATETIME)
_SCORED = (*_CONTINUOUS, ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN)


def pair_trend_details(real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """One row per column pair: its metric, real association, whether it is scored, and its score.

    Only the scored pairs are scored (as in the report), unless none is: then every pair.
    The real associations are all computed first, from integer codes (a table of 1,128 pairs
    of 80,000 rows in about a second); the scores by SDMetrics' metrics.
    """
    columns = [c.name for c in schema.columns if c.kind in _SCORED]
    continuous = {c.name for c in schema.columns if c.kind in _CONTINUOUS}
    numbers = {n: (as_number(real[n]), as_number(synthetic[n])) for n in continuous}
    binned = {n: discretize_column(*numbers[n], num_discrete_bins=BINS) for n in continuous}
    discrete = {n: binned[n] if n in binned else (real[n].to_numpy(), synthetic[n].to_numpy()) for n in columns}
    codes = {n: pd.factorize(discrete[n][0], use_na_sentinel=False) for n in columns}
    pairs = []
    for first, second in itertools.combinations(columns, 2):
        if first in continuous and second in continuous:
            strength = abs(_pearson(numbers[first][0], numbers[second][0]))
            pairs.append(_row(first, second, CorrelationSimilarity, strength, strength > REAL_CORRELATION_THRESHOLD))
        else:
            strength = _cramers_v(codes[first], codes[second])
            pairs.append(_row(first, second, ContingencySimilarity, strength, strength > REAL_ASSOCIATION_THRESHOLD))
    details = pd.DataFrame(pairs, columns=["column_1", "column_2", "metric", "score", "real_association", "scored"])
    chosen = details["scored"] if details["scored"].any() else details["real_association"].notna()
    for index in details.index[chosen]:
        first, second = details.at[index, "column_1"], details.at[index, "column_2"]
        if details.at[index, "metric"] == CorrelationSimilarity.__name__:
            details.at[index, "score"] = _correlation_similarity(numbers[first], numbers[second])
        else:
            details.at[index, "score"] = ContingencySimilarity.compute_breakdown(
                pd.DataFrame({first: discrete[first][0], second: discrete[second][0]}),
                pd.DataFrame({first: discrete[first][1], second: discrete[second][1]}),
            )["score"]
    return details


def pair_trends_score(details: pd.DataFrame) -> float:
    """The mean score of the scored pairs (of every pair when none is scored; NaN without pairs)."""
    scores = details["score"].dropna()
    return float(scores.mean()) if len(scores) else float("nan")


def _correlation_similarity(first: tuple[pd.Series, pd.Series], second: tuple[pd.Series, pd.Series]) -> float:
    real = pd.DataFrame({"a": first[0], "b": second[0]})
    synthetic = pd.DataFrame({"a": first[1], "b": second[1]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return float(CorrelationSimilarity.compute_breakdown(real, synthetic)["score"])
        except (ConstantInputError, IncomputableMetricError, ValueError):  # constant or empty: no correlation
            return float("nan")


def _pearson(first: pd.Series, second: pd.Series) -> float:
    both = pd.DataFrame({"a": first, "b": second}).dropna()
    if len(both) < 2 or both["a"].nunique() < 2 or both["b"].nunique() < 2:
        return float("nan")
    return float(np.corrcoef(both["a"], both["b"])[0, 1])


def _cramers_v(first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray]) -> float:
    """Cramér's V of two factorized real columns (missing values are a category, as in the report)."""
    (a, a_values), (b, b_values) = first, second
    if len(a_values) < 2 or len(b_values) < 2:
        return float("nan")
    counts = np.bincount(a * len(b_values) + b, minlength=len(a_values) * len(b_values))
    return float(association(counts.reshape(len(a_values), len(b_values)), method="cramer"))


def _row(first: str, second: str, metric, strength: float, scored: bool) -> dict:
    return {"column_1": first, "column_2": second, "metric": metric.__name__, "score": float("nan"),
            "real_association": strength, "scored": bool(scored)}


def as_number(column: pd.Series) -> pd.Series:
    """Dates (datetime64, or Python dates in an object column) as nanoseconds, numbers as floats; NaN for missing."""
    if pd.api.types.is_datetime64_any_dtype(column) or (column.dtype == object and _holds_dates(column)):
        values = pd.to_datetime(column, utc=True).dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
        numbers = values.astype("int64").astype(float)
        numbers[np.isnat(values)] = np.nan
        return pd.Series(numbers, index=column.index)
    return pd.to_numeric(column, errors="coerce").astype(float)


def _holds_dates(column: pd.Series) -> bool:
    first = column.dropna()
    return len(first) > 0 and isinstance(first.iloc[0], (dt.date, pd.Timestamp, np.datetime64))
