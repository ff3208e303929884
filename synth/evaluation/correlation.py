"""Correlation analysis: pairwise association matrices of the real and synthetic data.

Definitions, for each pair of columns:

* two numbers (dates as seconds): Pearson's r and Spearman's rho, on rows where both are
  present; signed, in [-1, 1];
* two categories (missing as a category): Cramer's V with Bergsma's bias correction,
  V = sqrt(phi2~ / min(k~ - 1, r~ - 1)), in [0, 1] (0 for independent columns even in
  small samples);
* a number and a category: the correlation ratio eta = sqrt(SS_between / SS_total) of
  the number across the category's groups, in [0, 1].

The *association matrix* uses Pearson, V and eta. The summary is
``correlation_similarity = 1 - mean over pairs of |a_real - a_synthetic| / span``, span 2
for signed (Pearson) pairs and 1 for the others: 1.0 means every association is kept.
The same similarity is reported for Spearman's rho, V and eta alone.
References: K. Pearson (1895); C. Spearman (1904); H. Cramer (1946), "Mathematical Methods
of Statistics"; W. Bergsma (2013), J. Korean Stat. Soc. 42(3); K. Pearson (1903) for eta.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from synth.evaluation.encoding import Encoded, Layout


def correlation_scores(layout: Layout, real: Encoded, synthetic: Encoded) -> tuple[dict, dict]:
    """Similarity of the association structure, and the matrices for the heatmaps."""
    real_pearson, real_spearman, real_assoc = association_matrices(layout, real)
    syn_pearson, syn_spearman, syn_assoc = association_matrices(layout, synthetic)
    p = len(layout.numeric)
    signed = np.zeros(real_assoc.shape, dtype=bool)
    signed[:p, :p] = True
    cat = slice(p, None)
    metrics = {
        "correlation_similarity": _similarity(real_assoc, syn_assoc, signed),
        "correlation": {
            "pearson_similarity": _similarity(real_pearson, syn_pearson, np.ones_like(real_pearson, dtype=bool)),
            "spearman_similarity": _similarity(real_spearman, syn_spearman, np.ones_like(real_spearman, dtype=bool)),
            "cramers_v_similarity": _similarity(real_assoc[cat, cat], syn_assoc[cat, cat], signed[cat, cat]),
            "correlation_ratio_similarity": _block_similarity(real_assoc[:p, cat], syn_assoc[:p, cat]),
            "pairs": len(layout.columns) * (len(layout.columns) - 1) // 2,
        },
    }
    figures = {
        "columns": layout.columns,
        "real": _rounded(real_assoc),
        "synthetic": _rounded(syn_assoc),
        "difference": _rounded(syn_assoc - real_assoc),
    }
    return metrics, figures


def association_matrices(layout: Layout, frame: Encoded) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Pearson among numbers, Spearman among numbers, mixed association over all columns)."""
    p, q = len(layout.numeric), len(layout.categorical)
    pearson = np.eye(p)
    spearman = np.eye(p)
    for i in range(p):
        for j in range(i + 1, p):
            x, y = frame.numeric[:, i], frame.numeric[:, j]
            both = ~(np.isnan(x) | np.isnan(y))
            pearson[i, j] = pearson[j, i] = _pearson(x[both], y[both])
            spearman[i, j] = spearman[j, i] = _pearson(rankdata(x[both]), rankdata(y[both]))
    assoc = np.eye(p + q)
    assoc[:p, :p] = pearson
    groups = [_compact(frame.codes[:, a]) for a in range(q)]  # once per column, not per pair
    for a in range(q):
        for b in range(a + 1, q):
            assoc[p + a, p + b] = assoc[p + b, p + a] = _cramers_v(groups[a], groups[b])
    for i in range(p):
        for a in range(q):
            assoc[i, p + a] = assoc[p + a, i] = _correlation_ratio(groups[a], frame.numeric[:, i])
    return pearson, spearman, assoc


def cramers_v(x: np.ndarray, y: np.ndarray) -> float:
    """Bias-corrected Cramer's V of two code arrays (Bergsma 2013); 0 if either is constant."""
    return _cramers_v(_compact(x), _compact(y))


def correlation_ratio(codes: np.ndarray, values: np.ndarray) -> float:
    """eta of ``values`` across the groups of ``codes`` (rows with a missing value dropped)."""
    return _correlation_ratio(_compact(codes), values)


def _compact(codes: np.ndarray) -> np.ndarray:
    """Codes renumbered 0..k-1 in order of value."""
    return np.unique(codes, return_inverse=True)[1].reshape(-1) if len(codes) else codes


def _cramers_v(xi: np.ndarray, yi: np.ndarray) -> float:
    n = len(xi)
    if n < 2:
        return 0.0
    r, k = int(xi.max()) + 1, int(yi.max()) + 1
    if r < 2 or k < 2:
        return 0.0
    table = np.bincount(xi * k + yi, minlength=r * k).reshape(r, k).astype(float)
    expected = np.outer(table.sum(1), table.sum(0)) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    phi2 = max(0.0, chi2 / n - (k - 1) * (r - 1) / (n - 1))
    r_corr = r - (r - 1) ** 2 / (n - 1)
    k_corr = k - (k - 1) ** 2 / (n - 1)
    denominator = min(k_corr - 1, r_corr - 1)
    return float(np.sqrt(min(phi2 / denominator, 1.0))) if denominator > 0 else 0.0


def _correlation_ratio(groups: np.ndarray, values: np.ndarray) -> float:
    present = ~np.isnan(values)
    groups, values = groups[present], values[present]
    if len(values) < 2:
        return 0.0
    centred = values - values.mean()
    total = float((centred**2).sum())
    if total == 0:
        return 0.0
    sums = np.bincount(groups, weights=centred)
    counts = np.bincount(groups)
    used = counts > 0  # groups whose rows all had the value missing
    between = float((sums[used] ** 2 / counts[used]).sum())
    return float(np.sqrt(min(max(between / total, 0.0), 1.0)))


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2:
        return 0.0
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denominator) if denominator > 0 else 0.0


def _similarity(real: np.ndarray, synthetic: np.ndarray, signed: np.ndarray) -> float:
    upper = np.triu_indices_from(real, k=1)
    if len(upper[0]) == 0:
        return float("nan")
    span = np.where(signed[upper], 2.0, 1.0)
    return float(1.0 - np.mean(np.abs(real[upper] - synthetic[upper]) / span))


def _block_similarity(real: np.ndarray, synthetic: np.ndarray) -> float:
    return float(1.0 - np.abs(real - synthetic).mean()) if real.size else float("nan")


def _rounded(matrix: np.ndarray) -> list[list[float]]:
    return np.round(matrix, 4).tolist()
