"""PCA synthesis: independent Gaussian scores on the principal components of the standardised table.

The plain space (:mod:`synth.models.tabular`: numbers and dates as floats, categories and
null flags one-hot) is standardised, scikit-learn's ``PCA`` keeps the components that
explain ``VARIANCE_KEPT`` of the variance, and a synthetic row is a vector of independent
normal scores, one per component with that component's variance, taken back through the
PCA, the scaling and each one-hot block's largest entry. It keeps the linear structure of
the table and smooths away the rest: marginals become Gaussian-like, rare categories fade.

Rows are the unit: with an entity key in the schema every synthetic row is a patient of
its own. No differential privacy.
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

from synth.models.tabular import BaselineSynthesizer, Features

#: share of the standardised table's variance the kept components explain
VARIANCE_KEPT = 0.95


class PCASynthesizer(BaselineSynthesizer):
    """Gaussian component scores through an inverse PCA."""

    name = "pca"
    description = f"PCA of the standardised table ({VARIANCE_KEPT:.0%} of its variance), Gaussian component scores"
    privacy_note = (
        "no formal privacy: the model keeps the table's means, scales and principal axes; rows are not copied"
    )

    def _fit_matrix(self, matrix: np.ndarray, rng: np.random.Generator) -> None:
        self.features_ = Features(self.transformer_.segments_).fit(matrix)
        standardised = self.features_.transform(matrix)
        if standardised.shape[1] == 1:
            self.pca_ = PCA(n_components=1).fit(standardised)  # a fraction needs two features or more
        else:
            self.pca_ = PCA(n_components=VARIANCE_KEPT, svd_solver="full").fit(standardised)

    def _generate(self, n: int, rng: np.random.Generator) -> np.ndarray:
        scores = rng.standard_normal((n, self.pca_.n_components_)) * np.sqrt(self.pca_.explained_variance_)
        return self.features_.inverse(self.pca_.inverse_transform(scores))

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            **self.features_.arrays(),
            "components": self.pca_.components_,
            "mean": self.pca_.mean_,
            "explained_variance": self.pca_.explained_variance_,
        }

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.features_ = Features(self.transformer_.segments_).set_arrays(arrays)
        pca = PCA(n_components=len(arrays["components"]))
        pca.components_, pca.mean_ = arrays["components"], arrays["mean"]
        pca.explained_variance_ = arrays["explained_variance"]
        pca.n_components_, pca.n_features_in_ = len(pca.components_), pca.components_.shape[1]
        self.pca_ = pca
