"""Children per parent row, modelled as a category: the exact count when it takes few values, else a band.

A parent's model draws how many rows each child table has under it. Counts are spiky (most
patients have one admission; a cap on events per stay puts a mass at the cap) and, on a
few hundred parents, heavy-tailed: a Gaussian mixture over them smooths the spikes and
misses the tail (on the MIMIC-III demo's uncapped output events it drew 40% too few).
So a count is a category for the VAE's softmax head:

* with at most ``BANDS`` distinct values, each value is its own category;
* otherwise the sorted values are cut into ``BANDS`` bands holding about equal numbers
  of parent rows (a spike alone fills a band), and a drawn band becomes a count drawn
  uniformly between the band's smallest and largest real count.

No count outside the real range is ever drawn. Under differential privacy the bands come
from the table's public contribution cap instead (:meth:`CountBands.public`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BANDS = 50


@dataclass(frozen=True)
class CountBands:
    """Bands of counts, each ``[low, high]`` (equal for an exact count), in increasing order."""

    lows: tuple[int, ...]
    highs: tuple[int, ...]

    @classmethod
    def fit(cls, counts: np.ndarray) -> CountBands:
        values, rows = np.unique(counts, return_counts=True)
        if len(values) <= BANDS:
            return cls(tuple(int(v) for v in values), tuple(int(v) for v in values))
        # Each value's band is where its share of parent rows starts: about equal masses.
        starts = (np.cumsum(rows) - rows) / rows.sum()
        band = np.minimum((starts * BANDS).astype(np.int64), BANDS - 1)
        edges = np.flatnonzero(np.r_[True, band[1:] != band[:-1]])
        lows = values[edges]
        highs = np.r_[values[edges[1:] - 1], values[-1]]
        return cls(tuple(int(v) for v in lows), tuple(int(v) for v in highs))

    @classmethod
    def public(cls, cap: int) -> CountBands:
        """Bands of ``0..cap`` from the cap alone (under DP, where counts are bounded by a public cap).

        Each count is its own band up to ``BANDS`` values; beyond, bands widen geometrically
        (exact small counts, coarse large ones), as real counts are dense at the bottom.
        """
        if cap + 1 <= BANDS:
            values = tuple(range(cap + 1))
            return cls(values, values)
        lows = np.unique(np.r_[0, np.round(np.geomspace(1, cap, BANDS - 1))].astype(np.int64))
        highs = np.r_[lows[1:] - 1, cap]
        return cls(tuple(int(v) for v in lows), tuple(int(v) for v in highs))

    def encode(self, counts: np.ndarray) -> np.ndarray:
        """(rows,) the band of each count, as float labels."""
        return (np.searchsorted(np.asarray(self.lows), counts, side="right") - 1).astype(np.float64)

    def decode(self, bands: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(rows,) a count for each drawn band: uniform between the band's real bounds."""
        index = np.clip(np.nan_to_num(np.round(bands), nan=0), 0, len(self.lows) - 1).astype(np.int64)
        return rng.integers(np.asarray(self.lows)[index], np.asarray(self.highs)[index] + 1)

    def to_dict(self) -> dict:
        return {"lows": list(self.lows), "highs": list(self.highs)}

    @classmethod
    def from_dict(cls, data: dict) -> CountBands:
        return cls(tuple(data["lows"]), tuple(data["highs"]))
