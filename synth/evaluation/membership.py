"""Membership inference: can an attacker holding the synthetic data tell who was trained on?

The attacker gets target records, half of them training rows (members) and half real
holdout rows the generator never saw (non-members), and scores each; the AUC of the
scores over member/non-member is reported (0.5 = no better than chance, 1.0 = perfect).

* Distance attack: score = -(Gower distance to the closest synthetic row). Memorised
  records sit next to a synthetic copy.
* Density attack (DOMIAS): score = p_synthetic(x) / p_reference(x), the ratio of the
  synthetic density to the real population density at x, estimated with k-nearest-
  neighbour radii (p ~ 1 / r_k^d, so the score is monotone in r_k,reference / r_k,synthetic).
  The reference density comes from holdout rows kept out of the targets. It flags
  records around which the generator is denser than the population is: overfitting.

``mia_auc`` is the larger of the two AUCs. Sampling: ``rows`` members and as many
non-members (limited by half the holdout), searched against ``reference_rows``
synthetic rows; the sizes are reported.
References: M. Platzer and T. Reutterer (2021) for the distance attack; B. van Breugel,
H. Sun, Z. Qian, M. van der Schaar (2023), "Membership Inference Attacks against
Synthetic Data through Overfitting Detection" (DOMIAS), AISTATS.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from synth.evaluation.encoding import Encoded
from synth.evaluation.gower import GowerScale, nearest
from synth.evaluation.samples import sample_indices

K_DENSITY = 5


def membership_inference(
    train: Encoded,
    holdout: Encoded,
    synthetic: Encoded,
    rows: int,
    reference_rows: int,
    rng: np.random.Generator,
    holdout_patients: np.ndarray | None = None,
) -> dict:
    """AUCs of the distance and density attacks, and the sizes they used.

    Args:
        holdout_patients: the holdout rows' patient (entity key) codes, when the table has
            one. The holdout is then halved by patient: a non-member's own other rows in the
            population reference would sit next to it and make the density attack look
            perfect for a reason that has nothing to do with the synthetic data.
    """
    non_member_rows, population_rows = _halves(len(holdout), holdout_patients, rng)
    n = min(rows, len(non_member_rows))
    if n < 2 or len(synthetic) < K_DENSITY or len(population_rows) < 1:
        return {"mia_auc": float("nan"), "membership_inference": {"skipped": "holdout too small for an attack"}}
    non_members = holdout.take(np.sort(rng.choice(non_member_rows, size=n, replace=False)))
    population = holdout.take(population_rows)
    members = train.take(sample_indices(len(train), n, rng))
    synthetic = synthetic.take(sample_indices(len(synthetic), reference_rows, rng))
    targets = Encoded(np.vstack([members.numeric, non_members.numeric]), np.vstack([members.codes, non_members.codes]))
    is_member = np.concatenate([np.ones(n), np.zeros(n)])
    scale = GowerScale.fit(targets, synthetic, population)
    to_synthetic = nearest(targets, synthetic, scale, k=K_DENSITY)[0].astype(np.float64)
    k = min(K_DENSITY, len(population))
    to_population = nearest(targets, population, scale, k=k)[0].astype(np.float64)
    distance_auc = float(roc_auc_score(is_member, -to_synthetic[:, 0]))
    eps = 1e-9  # a target at radius 0 from k synthetic rows is maximally suspicious, not undefined
    density = (to_population[:, k - 1] + eps) / (to_synthetic[:, k - 1] + eps)
    density_auc = float(roc_auc_score(is_member, density))
    return {
        "mia_auc": max(distance_auc, density_auc),
        "membership_inference": {
            "distance_auc": distance_auc,
            "density_auc": density_auc,
            "members": n,
            "non_members": n,
            "synthetic_reference_rows": len(synthetic),
            "population_reference_rows": len(population),
            "k": K_DENSITY,
        },
    }


def _halves(rows: int, patients: np.ndarray | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Holdout row positions split in two, by patient when patients are given."""
    if patients is None:
        order = rng.permutation(rows)
        return np.sort(order[: rows // 2]), np.sort(order[rows // 2 :])
    unique = rng.permutation(np.unique(patients))
    first = np.isin(patients, unique[: len(unique) // 2])
    return np.flatnonzero(first), np.flatnonzero(~first)
