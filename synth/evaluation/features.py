"""Encoded tables as feature matrices for scikit-learn's histogram gradient boosting.

Numbers stay as they are (NaN is handled natively). Categories are recoded by frequency
in a reference table (the real one) to 0..K-1, with missing as a category of its own;
beyond ``MAX_LEVELS`` levels the rarest are pooled into one, since the booster's native
categorical support takes at most 255 bins.
"""

from __future__ import annotations

import numpy as np

from synth.evaluation.encoding import Encoded, Layout

MAX_LEVELS = 250
#: The boosters run on one OpenMP thread. On a busy machine (CI, a shared server) OpenMP's
#: spinning barriers made a 0.25 s fit take 22 s on two threads; one thread is never slow.
ONE_THREAD = 1


class FeatureMap:
    """Maps encoded frames to ``(X, categorical mask)``, fixed on a reference frame."""

    def __init__(self, layout: Layout, reference: Encoded, drop: tuple[str, ...] = ()) -> None:
        self.layout, self.numeric_index, self.categorical_index = layout.without(set(drop))
        self.recode = []
        for j in self.categorical_index:
            width = max(len(layout.levels[j]) + 1, int(reference.codes[:, j].max(initial=0)) + 1)
            counts = np.bincount(reference.codes[:, j], minlength=width)
            order = np.argsort(-counts, kind="stable")
            table = np.full(width, MAX_LEVELS, dtype=np.float64)
            table[order[:MAX_LEVELS]] = np.arange(min(MAX_LEVELS, width))
            self.recode.append(table)

    @property
    def categorical_mask(self) -> np.ndarray:
        return np.array([False] * len(self.numeric_index) + [True] * len(self.categorical_index))

    @property
    def names(self) -> list[str]:
        return self.layout.columns

    def __call__(self, frame: Encoded) -> np.ndarray:
        numeric = frame.numeric[:, self.numeric_index]
        categorical = [
            table[np.minimum(frame.codes[:, j], len(table) - 1)]
            for table, j in zip(self.recode, self.categorical_index)
        ]
        if categorical:
            return np.column_stack([numeric, *categorical])
        return numeric
