"""PCA: the real data's principal axes, with both tables projected onto them.

Definition: features are the numbers standardised with the *real* mean and standard
deviation (missing values set to the real mean) and the categories one-hot encoded
(the ``TOP_LEVELS`` most common real levels, the rest pooled), each indicator
standardised the same way; this is PCA of the real correlation matrix. The axes are
fitted on the real rows only, and the real and synthetic rows are projected onto them,
so both are seen through the same lens (fitting each table separately, as the
original pipeline did, compares unrelated axes).

Reported: the real explained-variance ratio of the first ``COMPONENTS`` axes; the
synthetic variance along the same axes as a share of the real total variance; and
``pca_similarity = 1 - sum_k |r_k - s_k| / max(sum_k r_k, sum_k s_k)`` over those axes
(1.0 when the synthetic data spread like the real data along every real axis). The plot
is a 2-D density of the first two components on a public grid (nice steps,
:mod:`synth.evaluation.grid`); cells with fewer than ``suppress_below`` real rows
(patients, with an entity key) are blanked, and no point is ever drawn.
Reference: I. T. Jolliffe (2002), "Principal Component Analysis", 2nd ed., Springer.
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

from synth.evaluation.encoding import Encoded, Layout
from synth.evaluation.grid import nice_edges
from synth.evaluation.samples import outer_edges, support

COMPONENTS = 10
TOP_LEVELS = 20
GRID = 40  # cells per axis at most


def pca_scores(
    layout: Layout,
    real: Encoded,
    synthetic: Encoded,
    seed: int,
    suppress_below: int = 10,
    patients: np.ndarray | None = None,
) -> tuple[dict, dict]:
    """Explained variance on the real axes, the similarity, and the density grids.

    ``patients`` (each real row's patient code) makes small-count suppression count
    patients instead of rows.
    """
    features = _Standardiser(layout, real)
    x_real, x_synthetic = features(real), features(synthetic)
    k = min(COMPONENTS, x_real.shape[1], max(x_real.shape[0] - 1, 1))
    if x_real.shape[1] == 0 or x_real.shape[0] < 3:
        return {"pca": {"skipped": "too few rows or columns"}}, {}
    pca = PCA(n_components=k, random_state=seed).fit(x_real)
    z_real, z_synthetic = pca.transform(x_real), pca.transform(x_synthetic)
    total = float(x_real.var(axis=0, ddof=1).sum())
    real_share = pca.explained_variance_ratio_
    synthetic_share = z_synthetic.var(axis=0, ddof=1) / total if len(z_synthetic) > 1 else np.zeros(k)
    similarity = 1.0 - np.abs(real_share - synthetic_share).sum() / max(real_share.sum(), synthetic_share.sum())
    metrics = {
        "pca_similarity": float(similarity),
        "pca": {
            "components": int(k),
            "features": int(x_real.shape[1]),
            "explained_variance_real": np.round(real_share, 5).tolist(),
            "explained_variance_synthetic": np.round(synthetic_share, 5).tolist(),
        },
    }
    figures = _density_grids(z_real[:, :2], z_synthetic[:, :2], suppress_below, patients) if k >= 2 else {}
    return metrics, figures


class _Standardiser:
    """Numbers and one-hot categories, centred and scaled with the real statistics."""

    def __init__(self, layout: Layout, real: Encoded) -> None:
        self.levels = [
            np.argsort(-np.bincount(real.codes[:, j]), kind="stable")[:TOP_LEVELS]
            for j in range(len(layout.categorical))
        ]
        raw = self._raw(real)
        self.mean = np.nanmean(raw, axis=0) if raw.shape[0] else np.zeros(raw.shape[1])
        self.mean = np.where(np.isnan(self.mean), 0.0, self.mean)
        scale = np.nanstd(raw, axis=0) if raw.shape[0] else np.ones(raw.shape[1])
        self.scale = np.where((scale > 0) & ~np.isnan(scale), scale, 1.0)

    def _raw(self, frame: Encoded) -> np.ndarray:
        indicators = [frame.codes[:, j, None] == levels[None, :] for j, levels in enumerate(self.levels)]
        return np.column_stack([frame.numeric, *indicators]).astype(float) if indicators else frame.numeric

    def __call__(self, frame: Encoded) -> np.ndarray:
        z = (self._raw(frame) - self.mean) / self.scale
        return np.where(np.isnan(z), 0.0, z)


def _density_grids(real: np.ndarray, synthetic: np.ndarray, suppress_below: int, patients: np.ndarray | None) -> dict:
    people = len(np.unique(patients)) if patients is not None else len(real)
    if people < 4 * suppress_below:
        return {}
    # Small tables get a coarser grid, so some cells hold enough people to be shown at all.
    cells = int(np.clip(np.sqrt(people / suppress_below), 5, GRID))
    edges = []
    for axis in range(2):
        low, high = outer_edges(real[:, axis], patients, suppress_below)  # never one person's value
        edges.append(nice_edges(low, high, cells))
    nx, ny = len(edges[0]) - 1, len(edges[1]) - 1
    inside = (real[:, 0] >= edges[0][0]) & (real[:, 0] < edges[0][-1]) & (real[:, 1] >= edges[1][0]) & (
        real[:, 1] < edges[1][-1]
    )
    ix = np.searchsorted(edges[0], real[inside, 0], side="right") - 1
    iy = np.searchsorted(edges[1], real[inside, 1], side="right") - 1
    flat = ix * ny + iy
    real_counts = np.bincount(flat, minlength=nx * ny).reshape(nx, ny)
    shown = support(flat, patients[inside] if patients is not None else None, nx * ny).reshape(nx, ny)
    synthetic_counts = np.histogram2d(synthetic[:, 0], synthetic[:, 1], bins=edges)[0]
    real_density = np.where(shown >= suppress_below, real_counts / len(real), 0.0)
    return {
        "x": ((edges[0][:-1] + edges[0][1:]) / 2).round(4).tolist(),
        "y": ((edges[1][:-1] + edges[1][1:]) / 2).round(4).tolist(),
        # histogram2d counts are indexed [x, y]; plots want rows of y.
        "real": real_density.T.round(6).tolist(),
        "synthetic": (synthetic_counts / max(len(synthetic), 1)).T.round(6).tolist(),
    }
