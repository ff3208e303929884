"""Attribute inference on declared sensitive columns.

The attacker knows a target's other modelled columns (the quasi-identifiers: every
column that is not declared sensitive) and looks up the closest synthetic row on them
(Gower's distance); that row's sensitive value is the guess. A guess is right when it
equals the truth (categories) or lies within ``TOLERANCE`` of the real 1st-99th
percentile spread (numbers). Success rates are measured on training rows (members) and on
holdout rows the generator never saw (non-members):

* ``member_accuracy`` - ``holdout_accuracy`` = ``advantage``: what the synthetic data
  give away about the people it was trained on beyond what it teaches about anyone
  (generalisation is fine; disclosure is the gap);
* ``baseline_accuracy``: guessing the most common value (categories) or the median
  (numbers), for scale.

Sampling: ``rows`` members and ``rows`` non-members (as many as the holdout has), searched
against ``reference_rows`` synthetic rows; the sizes are reported. With an entity key the
targets are whole patients (at most ``ROWS_PER_PATIENT`` rows each, as many patients on
each side) and every accuracy is a mean over patients of the patient's share of right
guesses: a patient with many rows counts once. The numeric ranges of the distance come
from the real targets only.
Reference: J. Taub, M. Elliot, M. Pampaka, D. Smith (2018), "Differential correct
attribution probability for synthetic data", Privacy in Statistical Databases (LNCS 11126);
Stadler, Oprisanu, Troncoso (2022), "Synthetic Data - Anonymisation Groundhog Day", USENIX Security.
"""

from __future__ import annotations

import numpy as np

from synth.evaluation.encoding import Encoded, Layout
from synth.evaluation.gower import GowerScale, nearest
from synth.evaluation.samples import per_patient_mean, sample_indices, sample_patients

TOLERANCE = 0.05


def attribute_inference(
    layout: Layout,
    sensitive: list[str],
    train: Encoded,
    holdout: Encoded,
    synthetic: Encoded,
    rows: int,
    reference_rows: int,
    rng: np.random.Generator,
    train_patients: np.ndarray | None = None,
    holdout_patients: np.ndarray | None = None,
    workers: int = 1,
) -> dict:
    """Per sensitive column: member, holdout and baseline accuracy and the advantage.

    Args:
        train_patients, holdout_patients: each row's patient code, when the table has an
            entity key: targets are then drawn, and accuracies averaged, by patient.
        workers: processes sharing the nearest-neighbour searches (the same numbers for any count).
    """
    if not sensitive:
        return {"attribute_disclosure": {"skipped": "no sensitive columns declared (evaluation.sensitive)"}}
    known, num_keep, cat_keep = layout.without(sensitive)
    if not known.columns:
        return {"attribute_disclosure": {"skipped": "every column is sensitive: nothing left to link on"}}
    if train_patients is not None and holdout_patients is not None:
        non_member_rows, non_member_of = sample_patients(np.arange(len(holdout)), holdout_patients, rows, rng)
        member_rows, member_of = sample_patients(
            np.arange(len(train)), train_patients, rows, rng, count=int(non_member_of.max(initial=-1)) + 1
        )
    else:
        member_rows, non_member_rows = sample_indices(len(train), rows, rng), sample_indices(len(holdout), rows, rng)
        member_of, non_member_of = np.arange(len(member_rows)), np.arange(len(non_member_rows))
    members, non_members = train.take(member_rows), holdout.take(non_member_rows)
    synthetic = synthetic.take(sample_indices(len(synthetic), reference_rows, rng))
    qi = [frame.select(num_keep, cat_keep) for frame in (members, non_members, synthetic)]
    scale = GowerScale.fit(qi[0], qi[1])
    member_match = nearest(qi[0], qi[2], scale, k=1, workers=workers)[1][:, 0]
    holdout_match = nearest(qi[1], qi[2], scale, k=1, workers=workers)[1][:, 0] if len(non_members) else np.empty(0, np.int64)
    columns = {}
    for name in sensitive:
        truth_of, guess_of, baseline, right = _column(layout, name, train)
        member_rate = _accuracy(right(guess_of(synthetic)[member_match], truth_of(members)), member_of)
        holdout_rate = _accuracy(right(guess_of(synthetic)[holdout_match], truth_of(non_members)), non_member_of)
        columns[name] = {
            "member_accuracy": member_rate,
            "holdout_accuracy": holdout_rate,
            "baseline_accuracy": _accuracy(right(np.full(len(members), baseline), truth_of(members)), member_of),
            "advantage": member_rate - holdout_rate,
        }
    return {
        "attribute_disclosure": {
            "max_advantage": max(c["advantage"] for c in columns.values()),
            "columns": columns,
            "members": len(members),
            "non_members": len(non_members),
            "unit": "patient" if train_patients is not None and holdout_patients is not None else "row",
            "member_units": int(member_of.max(initial=-1)) + 1,
            "non_member_units": int(non_member_of.max(initial=-1)) + 1,
            "synthetic_reference_rows": len(synthetic),
            "known_columns": len(known.columns),
        }
    }


def _accuracy(hits: np.ndarray, owners: np.ndarray) -> float:
    """The mean over units (patients, or rows) of each unit's share of right guesses."""
    return float(per_patient_mean(hits.astype(np.float64), owners).mean()) if len(hits) else float("nan")


def _column(layout: Layout, name: str, train: Encoded):
    """(truth getter, guess getter, baseline guess, hit test) for one sensitive column."""
    if name in layout.categorical:
        j = layout.categorical.index(name)
        get = lambda frame: frame.codes[:, j]  # noqa: E731
        baseline = int(np.bincount(train.codes[:, j]).argmax())
        return get, get, baseline, lambda guess, truth: guess == truth
    j = layout.numeric.index(name)
    get = lambda frame: frame.numeric[:, j]  # noqa: E731
    present = train.numeric[:, j][~np.isnan(train.numeric[:, j])]
    spread = float(np.subtract(*np.quantile(present, [0.99, 0.01]))) if len(present) else 0.0
    tolerance = TOLERANCE * spread

    def right(guess: np.ndarray, truth: np.ndarray) -> np.ndarray:
        both_missing = np.isnan(guess) & np.isnan(truth)
        with np.errstate(invalid="ignore"):
            return both_missing | (np.abs(guess - truth) <= tolerance)

    return get, get, float(np.median(present)) if len(present) else float("nan"), right
