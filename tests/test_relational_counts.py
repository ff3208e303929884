"""Children counts as categories: exact values when few, bands of about equal mass when many."""

from __future__ import annotations

import numpy as np

from synth.relational.counts import BANDS, CountBands


def test_few_values_are_their_own_categories():
    counts = np.array([0, 1, 1, 1, 2, 20, 20])
    bands = CountBands.fit(counts)
    assert bands.lows == bands.highs == (0, 1, 2, 20)
    assert bands.encode(counts).tolist() == [0, 1, 1, 1, 2, 3, 3]
    assert bands.decode(bands.encode(counts), np.random.default_rng(0)).tolist() == counts.tolist()


def test_many_values_are_cut_into_bands_that_keep_the_distribution():
    counts = np.random.default_rng(0).negative_binomial(1, 0.01, 2_000)  # heavy tail, hundreds of values
    bands = CountBands.fit(counts)
    assert len(bands.lows) <= BANDS and bands.lows[0] == counts.min() and bands.highs[-1] == counts.max()
    assert all(high < low for high, low in zip(bands.highs, bands.lows[1:]))  # disjoint, in order
    encoded = bands.encode(counts).astype(int)
    assert np.bincount(encoded).max() <= 2 * len(counts) / BANDS  # about equal masses
    drawn = bands.decode(encoded, np.random.default_rng(1))
    lows, highs = np.asarray(bands.lows)[encoded], np.asarray(bands.highs)[encoded]
    assert ((drawn >= lows) & (drawn <= highs)).all()
    assert abs(np.median(drawn) - np.median(counts)) <= 0.05 * np.median(counts)
    assert CountBands.from_dict(bands.to_dict()) == bands
