"""Propensity score mean squared error (pMSE): can a classifier tell synthetic rows from real?

Definition: stack n_real real rows (label 0) and n_synthetic synthetic rows (label 1);
c = n_synthetic / (n_real + n_synthetic). A gradient-boosted classifier is trained on
``TRAIN_SHARE`` of the stacked rows (stratified) and scores the other rows only, never
the rows it was fitted on: pMSE = mean over scored rows of (p_i - c)^2. It is 0 when the
classifier can do no better than the base rate and c(1 - c) when it separates the two
perfectly. Its null expectation comes from the same procedure with the labels permuted
(``PERMUTATIONS`` times, mean taken): ``pmse_ratio = pMSE / null pMSE`` is about 1 for
synthetic data the classifier cannot tell from real, and grows as it can. The AUC of the
scores is reported too (0.5 = indistinguishable).
References: J. Snoke, G. M. Raab, B. Nowok, C. Dibben, A. Slavkovic (2018), "General and
specific utility measures for synthetic data", JRSS A 181(3); M.-J. Woo et al. (2009),
"Global measures of data utility for microdata masked for disclosure limitation", J. Priv.
Confidentiality 1(1).
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupShuffleSplit, train_test_split
from threadpoolctl import threadpool_limits

from synth.evaluation.encoding import Encoded, Layout
from synth.evaluation.features import ONE_THREAD, FeatureMap
from synth.evaluation.samples import seed_for

TRAIN_SHARE = 0.7
PERMUTATIONS = 3


def propensity_scores(
    layout: Layout,
    real: Encoded,
    synthetic: Encoded,
    rng: np.random.Generator,
    real_patients: np.ndarray | None = None,
    synthetic_patients: np.ndarray | None = None,
) -> dict:
    """pMSE, its null expectation and ratio, the propensity AUC, and the sizes used.

    Args:
        real_patients: each real row's patient code, when the table has an entity key: the
            split and the permutations then keep a patient's rows together.
        synthetic_patients: the same for the synthetic rows (each row its own group if absent).
    """
    stacked = Encoded(np.vstack([real.numeric, synthetic.numeric]), np.vstack([real.codes, synthetic.codes]))
    # Category ranks from both tables together: ranks from the real rows alone would pool the
    # synthetic-only rare levels apart and hand the classifier a label it did not earn.
    features = FeatureMap(layout, stacked)
    x = features(stacked)
    y = np.concatenate([np.zeros(len(real)), np.ones(len(synthetic))])
    groups = _groups(real_patients, synthetic_patients, len(synthetic))
    c = len(synthetic) / len(y)
    observed, auc = _pmse(x, y, features.categorical_mask, groups, rng)
    null = [_pmse(x, _permuted(y, groups, rng), features.categorical_mask, groups, rng)[0] for _ in range(PERMUTATIONS)]
    null_mean = float(np.mean(null))
    return {
        "pmse": observed,
        "pmse_null": null_mean,
        "pmse_ratio": observed / null_mean if null_mean > 0 else float("inf"),
        "pmse_max": c * (1 - c),
        "propensity_auc": auc,
        "propensity": {
            "c": c,
            "real_rows": len(real),
            "synthetic_rows": len(synthetic),
            "scored_share": round(1 - TRAIN_SHARE, 3),
            "split": "by patient" if groups is not None else "by row",
            "permutations": PERMUTATIONS,
            "classifier": "HistGradientBoostingClassifier",
        },
    }


def pmse(scores: np.ndarray, c: float) -> float:
    """mean (p_i - c)^2: the propensity mean squared error of scores ``p`` about the base rate ``c``."""
    return float(np.mean((scores - c) ** 2))


def _groups(real: np.ndarray | None, synthetic: np.ndarray | None, synthetic_rows: int) -> np.ndarray | None:
    """One group code per stacked row (real patients, then synthetic ones), or ``None`` without patients."""
    if real is None:
        return None
    synthetic = synthetic if synthetic is not None else np.arange(synthetic_rows)
    return np.concatenate([real.astype(np.int64), synthetic.astype(np.int64) + int(real.max(initial=-1)) + 1])


def _permuted(y: np.ndarray, groups: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """Labels shuffled across rows, or across patients (a patient's rows keep one label)."""
    if groups is None:
        return rng.permutation(y)
    _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    return rng.permutation(y[first])[inverse]


def _pmse(
    x: np.ndarray, y: np.ndarray, categorical: np.ndarray, groups: np.ndarray | None, rng: np.random.Generator
) -> tuple[float, float]:
    if groups is None:
        fit, score = train_test_split(np.arange(len(y)), train_size=TRAIN_SHARE, stratify=y, random_state=seed_for(rng))
    else:
        split = GroupShuffleSplit(n_splits=1, train_size=TRAIN_SHARE, random_state=seed_for(rng))
        fit, score = next(split.split(x, y, groups))
    model = HistGradientBoostingClassifier(
        categorical_features=categorical, early_stopping=True, random_state=seed_for(rng)
    )
    with threadpool_limits(ONE_THREAD, user_api="openmp"):
        model.fit(x[fit], y[fit])
        p = model.predict_proba(x[score])[:, 1]
    # The base rate of the labels in hand: permuted patients' labels need not keep the exact share.
    c = float(y.mean())
    auc = float(roc_auc_score(y[score], p)) if 0 < y[score].mean() < 1 else float("nan")
    return pmse(p, c), auc
