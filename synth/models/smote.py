"""SMOTE synthesis: each synthetic row a random point between a real row and one of its neighbours.

A synthetic row takes a random real row ``a``, one of its ``NEIGHBOURS`` nearest real rows
``b`` (scikit-learn ``NearestNeighbors`` on the standardised plain space, see
:class:`~synth.models.tabular.Features`) and a uniform ``t``: every number and date is
``a + t (b - a)`` (the value of whichever of the two is not null, if one is), and every
category and null flag is ``b``'s with probability ``t``, ``a``'s otherwise.

**Privacy risk.** The output interpolates real records: a synthetic row lies on the segment
between two real rows and is often very close to one of them, and to sample, the model
folder stores every training row (in the transformed space: floats and labels,
``state.npz``), so the folder is as sensitive as the extract itself. ``model.json`` says
so in ``privacy_note``.

Rows are the unit: with an entity key in the schema every synthetic row is a patient of
its own. No differential privacy.

Reference: Chawla et al., "SMOTE: Synthetic Minority Over-sampling Technique", JAIR 2002.
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors

from synth.models.tabular import BaselineSynthesizer, Features, blocks, nulls

#: neighbours each real row may be interpolated with
NEIGHBOURS = 5


class SMOTESynthesizer(BaselineSynthesizer):
    """Interpolation between real rows and their nearest neighbours."""

    name = "smote"
    description = f"SMOTE: random points between a real row and one of its {NEIGHBOURS} nearest real rows"
    privacy_note = (
        "PRIVACY RISK: SMOTE interpolates real records: every synthetic row lies between two real rows and may "
        "be nearly a copy of one; the model folder stores every training row (transformed, in state.npz) and is "
        "as sensitive as the real extract. Never release it or its output without the release gate."
    )

    def _fit_matrix(self, matrix: np.ndarray, rng: np.random.Generator) -> None:
        features = Features(self.transformer_.segments_).fit(matrix).transform(matrix)
        k = min(NEIGHBOURS, len(matrix) - 1)
        _, found = NearestNeighbors(n_neighbors=k + 1).fit(features).kneighbors(features)
        # Each row's own index is usually first, but a duplicate row may come first instead.
        own = found == np.arange(len(matrix))[:, None]
        keep = ~own & (np.cumsum(~own, axis=1) <= k)
        self.rows_ = matrix
        self.neighbours_ = found[keep].reshape(len(matrix), k)

    def _generate(self, n: int, rng: np.random.Generator) -> np.ndarray:
        first = rng.integers(len(self.rows_), size=n)
        second = self.neighbours_[first, rng.integers(self.neighbours_.shape[1], size=n)]
        t = rng.random(n)
        a, b = self.rows_[first], self.rows_[second]
        out = a.copy()
        for block in blocks(self.transformer_.segments_):
            take_b = rng.random(n) < t
            if block.label is not None:
                out[:, block.label] = np.where(take_b, b[:, block.label], a[:, block.label])
            if block.value is None:
                continue
            between = a[:, block.value] + t * (b[:, block.value] - a[:, block.value])
            chosen = np.where(take_b, b[:, block.value], a[:, block.value])
            one_null = nulls(a, block) != nulls(b, block)
            out[:, block.value] = np.where(one_null, chosen, between)
        return out

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"rows": self.rows_, "neighbours": self.neighbours_}

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.rows_, self.neighbours_ = arrays["rows"], arrays["neighbours"]
