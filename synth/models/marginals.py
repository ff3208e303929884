"""Independent marginals: the honest baseline every other synthesizer must beat.

Each column is drawn on its own from its own fitted marginal (categories by frequency,
null included; numbers and dates from their empirical quantile function, with their
share of nulls), so every column looks right and every relationship between columns
is gone. A synthesizer that does not beat this on pair trends or TSTR has learned
nothing about the joint distribution. Rows are the unit: with an entity key in the
schema every synthetic row is a patient of its own. No differential privacy.
"""

from __future__ import annotations

import numpy as np

from synth.models.tabular import BaselineSynthesizer, Marginals


class IndependentSynthesizer(BaselineSynthesizer):
    """Every column sampled independently from its own marginal."""

    name = "independent"
    description = "each column drawn independently from its own marginal (empirical quantiles, category frequencies)"
    privacy_note = (
        "no formal privacy: the model keeps each column's category frequencies and 513 quantiles of each "
        "number, so rare categories and extreme values of real rows can reappear; rows are not copied"
    )

    def _fit_matrix(self, matrix: np.ndarray, rng: np.random.Generator) -> None:
        self.marginals_ = Marginals(self.transformer_.segments_).fit(matrix)

    def _generate(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.marginals_.from_uniform(rng.random((n, len(self.marginals_.blocks))))

    def _arrays(self) -> dict[str, np.ndarray]:
        return dict(self.marginals_.arrays_)

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.marginals_ = Marginals(self.transformer_.segments_)
        self.marginals_.arrays_ = arrays
