"""Gaussian copula: each column's own marginal, joined by one correlation matrix of normal scores.

Every modelled column becomes a uniform score (its place in its own marginal, see
:class:`~synth.models.tabular.Marginals`: nulls first, then values by rank; a category
uniformly within its frequency interval, as RDT's ``UniformEncoder`` and SDV's
GaussianCopula do), then a standard normal score. The model is the correlation of those
scores; sampling draws a multivariate normal, maps it back through the normal CDF and each
marginal's inverse. Marginals come back as in :mod:`~synth.models.marginals`, and
monotone pairwise relationships with them; interactions beyond correlation do not.

Rows are the unit: with an entity key in the schema every synthetic row is a patient of
its own. No differential privacy.

Reference: Patki, Wedge, Veeramachaneni, "The Synthetic Data Vault", IEEE DSAA 2016.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from synth.models.tabular import BaselineSynthesizer, Marginals, normal_scores


class GaussianCopulaSynthesizer(BaselineSynthesizer):
    """Column marginals joined by a Gaussian copula."""

    name = "gaussian-copula"
    description = "Gaussian copula: empirical marginals joined by the correlation of their normal scores"
    privacy_note = (
        "no formal privacy: the model keeps each column's category frequencies, 513 quantiles of each "
        "number and the columns' correlations, so rare categories and extreme values can reappear; rows are not copied"
    )

    def _fit_matrix(self, matrix: np.ndarray, rng: np.random.Generator) -> None:
        self.marginals_ = Marginals(self.transformer_.segments_).fit(matrix)
        scores = normal_scores(self.marginals_.to_uniform(matrix, rng))
        with np.errstate(invalid="ignore", divide="ignore"):
            correlation = np.atleast_2d(np.corrcoef(scores, rowvar=False))
        # A constant column has no correlation with anything: it is drawn on its own.
        correlation = np.nan_to_num(correlation, nan=0.0)
        np.fill_diagonal(correlation, 1.0)
        self.correlation_ = correlation

    def _generate(self, n: int, rng: np.random.Generator) -> np.ndarray:
        normal = stats.multivariate_normal(cov=self.correlation_, allow_singular=True)
        scores = normal.rvs(size=n, random_state=rng).reshape(n, len(self.correlation_))
        return self.marginals_.from_uniform(stats.norm.cdf(scores))

    def _arrays(self) -> dict[str, np.ndarray]:
        return {**self.marginals_.arrays_, "correlation": self.correlation_}

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.correlation_ = arrays.pop("correlation")
        self.marginals_ = Marginals(self.transformer_.segments_)
        self.marginals_.arrays_ = arrays
