"""Utility: train on synthetic, test on real (TSTR), against train on real, test on real (TRTR).

Definition: one gradient-boosted model is fitted on synthetic rows and another, with the
same settings, on real training rows; both predict the configured target
(``evaluation.target``) for real *holdout* rows that neither the generator nor the
models saw. Classification targets report ROC AUC (one-vs-rest macro average for more
than two classes) and accuracy; numeric targets report R^2 and mean absolute error.
``utility_ratio`` is the share of the real model's skill above chance that the synthetic
model keeps: (AUC_TSTR - 0.5) / (AUC_TRTR - 0.5) for classification (0.5 is a coin's AUC),
R^2_TSTR / R^2_TRTR for regression (0 is predicting the mean). 1.0: a model built on the
synthetic data is as good as one built on the real data; 0: no better than chance; it is
undefined (``None``) when the real model itself is no better than chance.
Sampling: at most ``rows`` training rows for each model and ``rows`` holdout rows to
test; rows whose target is missing are left out; the sizes are reported.
References: C. Esteban, S. L. Hyland, G. Ratsch (2017), "Real-valued (medical) time series
generation with recurrent conditional GANs", arXiv:1706.02633 (TSTR); J. Jordon et al.
(2022), "Synthetic Data - what, why and how?", arXiv:2205.03257.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import accuracy_score, mean_absolute_error, r2_score, roc_auc_score
from threadpoolctl import threadpool_limits

from synth.evaluation.encoding import Encoded, Layout
from synth.evaluation.features import ONE_THREAD, FeatureMap
from synth.evaluation.samples import sample_indices, seed_for


@dataclass
class Predictions:
    """Holdout predictions of both models, kept for the fairness check."""

    holdout: Encoded
    truth: np.ndarray
    tstr: np.ndarray
    trtr: np.ndarray
    classification: bool
    holdout_patients: np.ndarray | None = None


def utility_scores(
    layout: Layout,
    target: str,
    train: Encoded,
    holdout: Encoded,
    synthetic: Encoded,
    rows: int,
    rng: np.random.Generator,
    holdout_patients: np.ndarray | None = None,
) -> tuple[dict, Predictions | None]:
    """TSTR and TRTR scores on the real holdout, and the predictions behind them.

    ``holdout_patients`` (each holdout row's patient code) travels with the tested rows, so
    the fairness check can count patients.
    """
    classification = target in layout.categorical
    features = FeatureMap(layout, train, drop=(target,))
    label = _labeller(layout, target)
    frames, kept = [], []
    for frame in (synthetic, train, holdout):
        present = np.flatnonzero(~_missing(label(frame), classification))
        kept.append(present[sample_indices(len(present), rows, rng)])
        frames.append(frame.take(kept[-1]))
    synthetic, train, holdout = frames
    tested_patients = holdout_patients[kept[2]] if holdout_patients is not None else None
    if min(len(synthetic), len(train), len(holdout)) < 2:
        return {"tstr": None, "trtr": None, "utility": {"skipped": "too few rows with the target present"}}, None
    seed = seed_for(rng)  # one seed for both models: only their training data differ
    x_test, truth = features(holdout), label(holdout)
    with threadpool_limits(ONE_THREAD, user_api="openmp"):
        tstr_model = _model(classification, features, seed, label(synthetic)).fit(features(synthetic), label(synthetic))
        trtr_model = _model(classification, features, seed, label(train)).fit(features(train), label(train))
        tstr, tstr_pred = _score(tstr_model, x_test, truth, classification)
        trtr, trtr_pred = _score(trtr_model, x_test, truth, classification)
    headline = "auc" if classification else "r2"
    metrics = {
        "tstr": tstr,
        "trtr": trtr,
        "utility_ratio": utility_ratio(tstr[headline], trtr[headline], classification),
        "utility": {
            "target": target,
            "task": "classification" if classification else "regression",
            "headline": headline,
            "synthetic_train_rows": len(synthetic),
            "real_train_rows": len(train),
            "holdout_test_rows": len(holdout),
            "model": type(tstr_model).__name__,
        },
    }
    return metrics, Predictions(holdout, truth, tstr_pred, trtr_pred, classification, tested_patients)


def utility_ratio(tstr: float | None, trtr: float | None, classification: bool) -> float | None:
    """The synthetic model's skill above chance as a share of the real model's (see the module docstring)."""
    if tstr is None or trtr is None:
        return None
    chance = 0.5 if classification else 0.0
    return (tstr - chance) / (trtr - chance) if trtr > chance else None


def _labeller(layout: Layout, target: str):
    if target in layout.categorical:
        j = layout.categorical.index(target)
        return lambda frame: frame.codes[:, j]
    j = layout.numeric.index(target)
    return lambda frame: frame.numeric[:, j]


def _missing(values: np.ndarray, classification: bool) -> np.ndarray:
    return values == 0 if classification else np.isnan(values)


def _model(classification: bool, features: FeatureMap, seed: int, labels: np.ndarray):
    kind = HistGradientBoostingClassifier if classification else HistGradientBoostingRegressor
    # Early stopping on an inner validation split: no tuning by hand, no overfitting to one sample.
    # That split is stratified for classes, which needs two rows of each: a class a synthetic
    # sample holds once (a rare value, a small sample) trains without it rather than crash.
    stratifiable = not classification or np.unique(labels, return_counts=True)[1].min() >= 2
    return kind(categorical_features=features.categorical_mask, early_stopping=stratifiable, random_state=seed)


def _score(model, x: np.ndarray, truth: np.ndarray, classification: bool) -> tuple[dict, np.ndarray]:
    if not classification:
        predicted = model.predict(x)
        return {"r2": float(r2_score(truth, predicted)), "mae": float(mean_absolute_error(truth, predicted))}, predicted
    predicted = model.predict(x)
    return {"auc": _auc(model, x, truth), "accuracy": float(accuracy_score(truth, predicted))}, predicted


def _auc(model, x: np.ndarray, truth: np.ndarray) -> float | None:
    """ROC AUC over the classes present in ``truth``; a class the model never saw scores 0."""
    classes = np.unique(truth)
    if len(classes) < 2:
        return None
    proba = model.predict_proba(x)
    known = {c: i for i, c in enumerate(model.classes_)}
    scores = np.column_stack([proba[:, known[c]] if c in known else np.zeros(len(x)) for c in classes])
    if len(classes) == 2:
        return float(roc_auc_score(truth == classes[1], scores[:, 1]))
    totals = scores.sum(axis=1, keepdims=True)
    scores = np.where(totals > 0, scores / np.where(totals > 0, totals, 1.0), 1.0 / len(classes))
    return float(roc_auc_score(truth, scores, multi_class="ovr", average="macro", labels=classes))
