"""Distance to the closest record (DCR) and nearest-neighbour distance ratio (NNDR).

Definitions, with Gower's distance (``synth.evaluation.gower``) over the modelled columns
and the real *training* rows as the reference set:

* DCR of a row: its distance to the closest training row. For synthetic rows this is how
  near the generator came to a real patient; the same distance for real *holdout* rows,
  which the generator never saw, is the baseline: how near a new patient from the same
  population comes by chance. Synthetic rows markedly closer than holdout rows suggest
  memorisation. The release gate compares the medians, and the tails: with t the
  ``quantile`` (default 5th percentile) of the holdout DCRs, the share of synthetic rows
  with DCR <= t (``dcr_tail_share``) against the holdout's own share at t
  (``dcr_holdout_tail_share``, about ``quantile``; more where distances tie, e.g. at 0).
  Near-copies of a fifth of the training rows barely move a median but lift the tail
  share by about a fifth.
* NNDR of a row: d1 / d2, its distances to the closest and second-closest training rows
  (1 when d2 = 0). Near 0 means the row sits next to one training row and no other.

Sampling: ``rows`` synthetic rows and up to ``rows`` holdout rows are measured against
*every* training row; the sizes are reported. The numeric ranges come from the real rows
(training and holdout) only, so synthetic and holdout distances use one ruler that a
generator's outliers cannot stretch. The histogram's edges lie on a public grid
(:mod:`synth.evaluation.grid`).
References: M. Platzer and T. Reutterer (2021), "Holdout-based empirical assessment of
mixed-type synthetic data", Frontiers in Big Data 4; Y. Lu et al. / synthcity's
"DCR" and "NNDR" privacy metrics (Qian et al. 2023, arXiv:2301.07573).
"""

from __future__ import annotations

import numpy as np

from synth.evaluation.encoding import Encoded
from synth.evaluation.gower import GowerScale, nearest
from synth.evaluation.grid import nice_edges
from synth.evaluation.samples import sample_indices

HISTOGRAM_BINS = 40
TAIL_QUANTILE = 0.05


def distance_scores(
    train: Encoded,
    holdout: Encoded,
    synthetic: Encoded,
    rows: int,
    rng: np.random.Generator,
    quantile: float = TAIL_QUANTILE,
    workers: int = 1,
) -> tuple[dict, dict]:
    """DCR and NNDR of sampled synthetic and holdout rows against all training rows, and the tail shares.

    ``workers`` processes share the synthetic and holdout rows by blocks (the same numbers for any count).
    """
    synthetic = synthetic.take(sample_indices(len(synthetic), rows, rng))
    holdout = holdout.take(sample_indices(len(holdout), rows, rng))
    scale = GowerScale.fit(train, holdout)
    synthetic_d = nearest(synthetic, train, scale, k=2, workers=workers)[0].astype(np.float64)
    holdout_d = (
        nearest(holdout, train, scale, k=2, workers=workers)[0].astype(np.float64) if len(holdout) else np.empty((0, 2))
    )
    synthetic_dcr, holdout_dcr = synthetic_d[:, 0], holdout_d[:, 0]
    # An observed holdout distance (not an interpolation), so ties at it count on both sides alike.
    tail = float(np.quantile(holdout_dcr, quantile, method="inverted_cdf")) if len(holdout_dcr) else float("nan")
    metrics = {
        "dcr_median": _quantile(synthetic_dcr, 0.5),
        "dcr_holdout_median": _quantile(holdout_dcr, 0.5),
        "nndr_median": _quantile(nndr(synthetic_d), 0.5),
        "nndr_holdout_median": _quantile(nndr(holdout_d), 0.5),
        "distance": {
            "metric": "Gower",
            "synthetic_rows": len(synthetic),
            "holdout_rows": len(holdout),
            "reference_rows": len(train),
            "dcr_p05": _quantile(synthetic_dcr, 0.05),
            "dcr_holdout_p05": _quantile(holdout_dcr, 0.05),
            "dcr_zero_share": float((synthetic_dcr == 0).mean()) if len(synthetic_dcr) else float("nan"),
            "dcr_holdout_zero_share": float((holdout_dcr == 0).mean()) if len(holdout_dcr) else float("nan"),
            "tail_quantile": quantile,
            "dcr_tail_share": _share_at_most(synthetic_dcr, tail),
            "dcr_holdout_tail_share": _share_at_most(holdout_dcr, tail),
        },
    }
    top = max(_quantile(synthetic_dcr, 0.99), _quantile(holdout_dcr, 0.99), 1e-9)
    edges = nice_edges(0.0, top, HISTOGRAM_BINS)
    figures = {
        "edges": edges.tolist(),
        "synthetic": _density(synthetic_dcr, edges),
        "holdout": _density(holdout_dcr, edges),
    }
    return metrics, figures


def nndr(distances: np.ndarray) -> np.ndarray:
    """d1 / d2 per row of a ``(n, 2)`` array of ascending distances (1 where d2 = 0)."""
    d1, d2 = distances[:, 0], distances[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d2 > 0, d1 / np.where(d2 > 0, d2, 1.0), 1.0)


def _share_at_most(values: np.ndarray, threshold: float) -> float:
    return float((values <= threshold).mean()) if len(values) and np.isfinite(threshold) else float("nan")


def _quantile(values: np.ndarray, q: float) -> float:
    return float(np.quantile(values, q)) if len(values) else float("nan")


def _density(values: np.ndarray, edges: np.ndarray) -> list[float]:
    counts = np.histogram(np.clip(values, edges[0], edges[-1]), edges)[0]
    return (counts / max(len(values), 1)).round(6).tolist()
