"""Fairness: subgroup representation, and the TSTR model's group gaps against TRTR's.

For each declared protected attribute (``evaluation.protected``; numbers are cut at the
real quartiles) and the configured classification target:

* representation: each group's share of the real training rows and of the synthetic
  rows (groups with fewer than ``suppress_below`` real rows are pooled into "other");
* demographic parity difference: max over classes k of
  max_g P(y_hat = k | g) - min_g P(y_hat = k | g) (for a binary target, the usual gap in
  positive-prediction rate);
* equalized odds difference: max over classes k (one-vs-rest) of the larger of the
  between-group ranges of the true-positive and false-positive rates;

both on the real holdout, for the model trained on synthetic data (TSTR) and the one
trained on real data (TRTR): synthetic data should not widen the gaps. Groups with fewer
than ``suppress_below`` holdout rows are left out of the gaps (too noisy, and too few
people to report on). With an entity key every such count is of distinct patients, not
rows: one patient's many rows must not make a group look large enough to show. A numeric
attribute's quartile cuts are rounded to a public grid (:mod:`synth.evaluation.grid`)
before they name the groups, so no label is a real person's value.
References: M. Hardt, E. Price, N. Srebro (2016), "Equality of Opportunity in Supervised
Learning", NeurIPS; fairlearn's ``demographic_parity_difference`` and
``equalized_odds_difference`` (Bird et al. 2020).
"""

from __future__ import annotations

import numpy as np

from synth.evaluation.distributions import OTHER_LABEL
from synth.evaluation.encoding import Encoded, Layout
from synth.evaluation.grid import nice_step, snap
from synth.evaluation.samples import support
from synth.evaluation.utility import Predictions

QUARTILES = (0.25, 0.5, 0.75)
CUT_GRID = 20  # quartile cuts are rounded to a nice step of about a twentieth of the spread


def fairness_scores(
    layout: Layout,
    protected: list[str],
    predictions: Predictions | None,
    train: Encoded,
    synthetic: Encoded,
    suppress_below: int,
    train_patients: np.ndarray | None = None,
) -> dict:
    """Per protected attribute: representation and the parity/odds gaps of TSTR and TRTR."""
    if not protected:
        return {"fairness": {"skipped": "no protected attributes declared (evaluation.protected)"}}
    if predictions is None or not predictions.classification:
        return {"fairness": {"skipped": "needs a categorical target (evaluation.target)"}}
    result = {}
    for name in protected:
        groups, labels = _groups(layout, name, train)
        real_groups, synthetic_groups = groups(train), groups(synthetic)
        holdout_groups = groups(predictions.holdout)
        result[name] = {
            "representation": _representation(real_groups, synthetic_groups, labels, suppress_below, train_patients),
            "tstr": _gaps(holdout_groups, predictions.truth, predictions.tstr, suppress_below,
                          predictions.holdout_patients),
            "trtr": _gaps(holdout_groups, predictions.truth, predictions.trtr, suppress_below,
                          predictions.holdout_patients),
        }
    return {"fairness": result}


def demographic_parity_difference(groups: np.ndarray, predicted: np.ndarray) -> float:
    """max over classes of the range across groups of P(y_hat = k | group)."""
    gaps = []
    for k in np.unique(predicted):
        rates = [np.mean(predicted[groups == g] == k) for g in np.unique(groups)]
        gaps.append(max(rates) - min(rates))
    return float(max(gaps)) if gaps else 0.0


def equalized_odds_difference(groups: np.ndarray, truth: np.ndarray, predicted: np.ndarray) -> float:
    """max over classes (one-vs-rest) of the larger range across groups of TPR and FPR."""
    gaps = []
    for k in np.unique(np.concatenate([truth, predicted])):
        tpr, fpr = [], []
        for g in np.unique(groups):
            t, p = truth[groups == g] == k, predicted[groups == g] == k
            if t.any():
                tpr.append(p[t].mean())
            if (~t).any():
                fpr.append(p[~t].mean())
        gaps.append(max(_range(tpr), _range(fpr)))
    return float(max(gaps)) if gaps else 0.0


def _range(values: list[float]) -> float:
    return max(values) - min(values) if len(values) > 1 else 0.0


def _gaps(
    groups: np.ndarray, truth: np.ndarray, predicted: np.ndarray, suppress_below: int, patients: np.ndarray | None
) -> dict:
    counts = support(groups, patients, int(groups.max(initial=0)) + 1)
    keep = counts[groups] >= suppress_below
    return {
        "demographic_parity_difference": demographic_parity_difference(groups[keep], predicted[keep]),
        "equalized_odds_difference": equalized_odds_difference(groups[keep], truth[keep], predicted[keep]),
        "groups": int((counts >= suppress_below).sum()),
    }


def _representation(
    real: np.ndarray, synthetic: np.ndarray, labels, suppress_below: int, patients: np.ndarray | None
) -> dict:
    width = int(max(real.max(initial=0), synthetic.max(initial=0))) + 1
    real_counts = np.bincount(real, minlength=width)
    synthetic_counts = np.bincount(synthetic, minlength=width)
    shown = support(real, patients, width) >= suppress_below
    n_real, n_synthetic = max(len(real), 1), max(len(synthetic), 1)
    table = {
        labels(g): {"real": real_counts[g] / n_real, "synthetic": synthetic_counts[g] / n_synthetic}
        for g in np.flatnonzero(shown)
    }
    if (~shown).any():
        table[OTHER_LABEL] = {
            "real": real_counts[~shown].sum() / n_real,
            "synthetic": synthetic_counts[~shown].sum() / n_synthetic,
        }
    return {k: {s: float(v) for s, v in shares.items()} for k, shares in table.items()}


def _groups(layout: Layout, name: str, train: Encoded):
    """(frame -> group codes, code -> label) for a protected attribute."""
    if name in layout.categorical:
        j = layout.categorical.index(name)
        levels = layout.levels[j]
        return (lambda frame: frame.codes[:, j]), (lambda g: "(missing)" if g == 0 else str(levels[g - 1]))
    j = layout.numeric.index(name)
    present = train.numeric[:, j][~np.isnan(train.numeric[:, j])]
    cuts = np.array([])
    if len(present):
        low, high = np.quantile(present, [0.05, 0.95])
        cuts = np.unique(snap(np.quantile(present, QUARTILES), nice_step(high - low, CUT_GRID)))
    bounds = ["-inf", *(f"{c:g}" for c in cuts), "inf"]

    def groups(frame: Encoded) -> np.ndarray:
        values = frame.numeric[:, j]
        return np.where(np.isnan(values), 0, np.searchsorted(cuts, values, side="right") + 1)

    return groups, lambda g: "(missing)" if g == 0 else f"[{bounds[g - 1]}, {bounds[g]})"
