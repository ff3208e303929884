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

With an entity key the targets are *patients*: as many training patients as holdout
patients are drawn whole (at most ``ROWS_PER_PATIENT`` rows each), the population
reference holds other holdout patients only (a non-member's own other rows would sit
next to it), and besides the row-level AUCs each attack is run at the patient level:
a patient's score is the mean of its rows' scores. What is disclosed is a person's
presence, so the patient-level AUC is the one that answers the question.

Every AUC is reported as measured, and ``mia_auc`` is the largest of max(AUC, 1 - AUC)
over the attacks: an attacker who knows which way the data lean can use either side.
Sampling: ``rows`` member rows and as many non-member rows (limited by half the holdout),
searched against ``reference_rows`` synthetic rows; the sizes are reported.
References: M. Platzer and T. Reutterer (2021) for the distance attack; B. van Breugel,
H. Sun, Z. Qian, M. van der Schaar (2023), "Membership Inference Attacks against
Synthetic Data through Overfitting Detection" (DOMIAS), AISTATS.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from synth.evaluation.encoding import Encoded
from synth.evaluation.gower import GowerScale, nearest
from synth.evaluation.samples import per_patient_mean, sample_indices, sample_patients

K_DENSITY = 5


def membership_inference(
    train: Encoded,
    holdout: Encoded,
    synthetic: Encoded,
    rows: int,
    reference_rows: int,
    rng: np.random.Generator,
    holdout_patients: np.ndarray | None = None,
    train_patients: np.ndarray | None = None,
    workers: int = 1,
) -> dict:
    """AUCs of the distance and density attacks (per row, and per patient), and the sizes used.

    Args:
        holdout_patients: the holdout rows' patient (entity key) codes, when the table has one.
            The holdout is then halved by patient, so the population reference never holds a
            non-member's own rows.
        train_patients: the training rows' patient codes; with ``holdout_patients`` the
            targets are drawn as whole patients and the patient-level attacks run.
        workers: processes sharing the nearest-neighbour searches (the same numbers for any count).
    """
    non_member_pool, population_rows = _halves(len(holdout), holdout_patients, rng)
    by_patient = train_patients is not None and holdout_patients is not None
    if by_patient:
        non_member_rows, non_member_of = sample_patients(
            non_member_pool, holdout_patients[non_member_pool], rows, rng
        )
        member_rows, member_of = sample_patients(
            np.arange(len(train)), train_patients, rows, rng, count=int(non_member_of.max(initial=-1)) + 1
        )
    else:
        n = min(rows, len(non_member_pool))
        non_member_rows = np.sort(rng.choice(non_member_pool, size=n, replace=False))
        member_rows = sample_indices(len(train), n, rng)
    if min(len(member_rows), len(non_member_rows)) < 2 or len(synthetic) < K_DENSITY or len(population_rows) < 1:
        return {"mia_auc": float("nan"), "membership_inference": {"skipped": "holdout too small for an attack"}}
    members, non_members = train.take(member_rows), holdout.take(non_member_rows)
    population = holdout.take(population_rows)
    synthetic = synthetic.take(sample_indices(len(synthetic), reference_rows, rng))
    targets = Encoded(np.vstack([members.numeric, non_members.numeric]), np.vstack([members.codes, non_members.codes]))
    is_member = np.concatenate([np.ones(len(members)), np.zeros(len(non_members))])
    # The ruler comes from real rows only: a synthetic outlier must not shrink every distance.
    scale = GowerScale.fit(targets, population)
    to_synthetic = nearest(targets, synthetic, scale, k=K_DENSITY, workers=workers)[0].astype(np.float64)
    k = min(K_DENSITY, len(population))
    to_population = nearest(targets, population, scale, k=k, workers=workers)[0].astype(np.float64)
    eps = 1e-9  # a target at radius 0 from k synthetic rows is maximally suspicious, not undefined
    scores = {
        "distance": -to_synthetic[:, 0],
        "density": (to_population[:, k - 1] + eps) / (to_synthetic[:, k - 1] + eps),
    }
    found = {f"{name}_auc": float(roc_auc_score(is_member, score)) for name, score in scores.items()}
    details: dict = {"unit": "row", "members": len(members), "non_members": len(non_members)}
    if by_patient:
        owner = np.concatenate([member_of, non_member_of + member_of.max() + 1])
        patient_is_member = per_patient_mean(is_member, owner)
        for name, score in scores.items():
            found[f"patient_{name}_auc"] = float(roc_auc_score(patient_is_member, per_patient_mean(score, owner)))
        details |= {"unit": "patient", "member_patients": int(member_of.max()) + 1,
                    "non_member_patients": int(non_member_of.max()) + 1}
    return {
        "mia_auc": max(two_sided(auc) for auc in found.values()),
        "membership_inference": found | details | {
            "synthetic_reference_rows": len(synthetic),
            "population_reference_rows": len(population),
            "k": K_DENSITY,
        },
    }


def two_sided(auc: float) -> float:
    """max(AUC, 1 - AUC): how well the better of the score and its opposite separates the groups."""
    return max(auc, 1.0 - auc)


def _halves(rows: int, patients: np.ndarray | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Holdout row positions split in two, by patient when patients are given."""
    if patients is None:
        order = rng.permutation(rows)
        return np.sort(order[: rows // 2]), np.sort(order[rows // 2 :])
    unique = rng.permutation(np.unique(patients))
    first = np.isin(patients, unique[: len(unique) // 2])
    return np.flatnonzero(first), np.flatnonzero(~first)
