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
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from synth.evaluation.encoding import Encoded, Layout
from synth.evaluation.features import ONE_THREAD, FeatureMap
from synth.evaluation.samples import seed_for

TRAIN_SHARE = 0.7
PERMUTATIONS = 3


def propensity_scores(layout: Layout, real: Encoded, synthetic: Encoded, rng: np.random.Generator) -> dict:
    """pMSE, its null expectation and ratio, the propensity AUC, and the sizes used."""
    stacked = Encoded(np.vstack([real.numeric, synthetic.numeric]), np.vstack([real.codes, synthetic.codes]))
    # Category ranks from both tables together: ranks from the real rows alone would pool the
    # synthetic-only rare levels apart and hand the classifier a label it did not earn.
    features = FeatureMap(layout, stacked)
    x = features(stacked)
    y = np.concatenate([np.zeros(len(real)), np.ones(len(synthetic))])
    c = len(synthetic) / len(y)
    observed, auc = _pmse(x, y, c, features.categorical_mask, rng)
    null = [_pmse(x, rng.permutation(y), c, features.categorical_mask, rng)[0] for _ in range(PERMUTATIONS)]
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
            "scored_rows": int(round(len(y) * (1 - TRAIN_SHARE))),
            "permutations": PERMUTATIONS,
            "classifier": "HistGradientBoostingClassifier",
        },
    }


def _pmse(
    x: np.ndarray, y: np.ndarray, c: float, categorical: np.ndarray, rng: np.random.Generator
) -> tuple[float, float]:
    x_fit, x_score, y_fit, y_score = train_test_split(
        x, y, train_size=TRAIN_SHARE, stratify=y, random_state=seed_for(rng)
    )
    model = HistGradientBoostingClassifier(
        categorical_features=categorical, early_stopping=True, random_state=seed_for(rng)
    )
    with threadpool_limits(ONE_THREAD, user_api="openmp"):
        model.fit(x_fit, y_fit)
        p = model.predict_proba(x_score)[:, 1]
    return float(np.mean((p - c) ** 2)), float(roc_auc_score(y_score, p))
