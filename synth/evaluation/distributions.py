"""Per-column distributions, real against synthetic: scores and plot-ready aggregates.

Definitions: for numbers and dates, the two-sample Kolmogorov-Smirnov statistic
D = sup_x |F_real(x) - F_synthetic(x)| over the present values (score 1 - D); for
categories, the total variation distance TV = 1/2 * sum_c |p_real(c) - p_synthetic(c)|
with missing as a category (score 1 - TV). 1.0 is a perfect match. The share of missing
numbers is reported beside D, which ignores them.
References: F. J. Massey (1951), "The Kolmogorov-Smirnov test for goodness of fit", JASA 46;
D. A. Levin, Y. Peres, E. L. Wilmer (2009), "Markov Chains and Mixing Times", ch. 4.

The plot aggregates never show a real row: histograms span the real values between
order statistics with at least ``suppress_below`` rows beyond them, widened to a public
grid (:mod:`synth.evaluation.grid`: every edge is a multiple of a nice step, or of a round
duration for dates, so no edge is a real value), with the tails folded into the end bins;
a bin or category with fewer than ``suppress_below`` real rows is not shown (categories
are pooled into "other"). With an entity key, "rows" above means distinct patients.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import ks_2samp

from synth.evaluation.encoding import Encoded, Layout
from synth.evaluation.grid import nice_edges
from synth.evaluation.samples import outer_edges, support

BINS = 30
MAX_CATEGORIES = 30
MISSING_LABEL = "(missing)"
OTHER_LABEL = "(other or rare)"


def distribution_scores(
    layout: Layout, real: Encoded, synthetic: Encoded, suppress_below: int = 10, patients: np.ndarray | None = None
) -> tuple[dict, dict]:
    """Per-column scores, and the per-column plot aggregates.

    Args:
        patients: each real row's patient code; when given, small counts are counted in
            patients rather than rows (see :func:`synth.evaluation.samples.support`).

    Returns:
        ``(metrics, figures)``: metrics hold ``distribution_score`` (mean of the column
        scores) and ``distribution_scores`` per column; figures hold binned densities
        and category shares.
    """
    scores, figures = {}, {}
    for j, name in enumerate(layout.numeric):
        r, s = real.numeric[:, j], synthetic.numeric[:, j]
        present = ~np.isnan(r)
        r_present, s_present = r[present], s[~np.isnan(s)]
        statistic = float(ks_2samp(r_present, s_present).statistic) if len(r_present) and len(s_present) else 1.0
        scores[name] = {
            "statistic": "KS",
            "value": statistic,
            "score": 1.0 - statistic,
            "missing_real": float(np.isnan(r).mean()) if len(r) else 0.0,
            "missing_synthetic": float(np.isnan(s).mean()) if len(s) else 0.0,
        }
        who = patients[present] if patients is not None else None
        figures[name] = _histogram(r_present, s_present, suppress_below, name in layout.datetimes, who)
    for j, name in enumerate(layout.categorical):
        width = len(layout.levels[j]) + 1
        r_share = _shares(real.codes[:, j], width)
        s_share = _shares(synthetic.codes[:, j], width)
        statistic = 0.5 * float(np.abs(r_share - s_share).sum())
        scores[name] = {"statistic": "TV", "value": statistic, "score": 1.0 - statistic}
        figures[name] = _bars(real.codes[:, j], r_share, s_share, layout.levels[j], suppress_below, patients)
    mean = float(np.mean([v["score"] for v in scores.values()])) if scores else float("nan")
    return {"distribution_score": mean, "distribution_scores": scores}, figures


def _shares(codes: np.ndarray, width: int) -> np.ndarray:
    counts = np.bincount(codes, minlength=width).astype(float)
    return counts / counts.sum() if counts.sum() else counts


def _histogram(
    real: np.ndarray, synthetic: np.ndarray, suppress_below: int, datetime: bool, patients: np.ndarray | None
) -> dict:
    people = len(np.unique(patients)) if patients is not None else len(real)
    if people < 2 * suppress_below:
        return {"type": "suppressed", "reason": f"fewer than {2 * suppress_below} real patients or rows"}
    low, high = outer_edges(real, patients, suppress_below)
    # In large tables the 1st/99th percentiles are the tighter edges (outliers do not stretch the axis).
    low, high = max(low, float(np.quantile(real, 0.01))), min(high, float(np.quantile(real, 0.99)))
    integral = bool(np.all(real == np.round(real)))
    edges = nice_edges(low, high, BINS, datetime=datetime, integral=integral)
    bins = len(edges) - 1
    low, high = edges[0], edges[-1]
    cells = np.clip(np.searchsorted(edges, np.clip(real, low, high), side="right") - 1, 0, bins - 1)
    real_counts = np.bincount(cells, minlength=bins)
    synthetic_counts = np.histogram(np.clip(synthetic, low, high), edges)[0] if len(synthetic) else np.zeros(bins)
    real_density = real_counts / max(len(real), 1)
    shown = support(cells, patients, bins) >= suppress_below
    return {
        "type": "histogram",
        "datetime": datetime,
        "edges": edges.tolist(),
        "real": [float(v) if keep else None for v, keep in zip(real_density, shown)],
        "synthetic": (synthetic_counts / max(len(synthetic), 1)).tolist(),
        "suppressed_bins": int((~shown & (real_counts > 0)).sum()),
    }


def _bars(
    real_codes: np.ndarray,
    real_share: np.ndarray,
    synthetic_share: np.ndarray,
    levels: tuple,
    suppress_below: int,
    patients: np.ndarray | None,
) -> dict:
    counts = support(real_codes, patients, len(real_share))
    order = [int(c) for c in np.argsort(-counts, kind="stable") if counts[c] >= suppress_below][:MAX_CATEGORIES]
    labels = [MISSING_LABEL if c == 0 else str(levels[c - 1]) for c in order]
    rest = np.ones(len(real_share), dtype=bool)
    rest[order] = False
    return {
        "type": "bars",
        "categories": labels + [OTHER_LABEL],
        "real": [float(real_share[c]) for c in order] + [float(real_share[rest].sum())],
        "synthetic": [float(synthetic_share[c]) for c in order] + [float(synthetic_share[rest].sum())],
    }
