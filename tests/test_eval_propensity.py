"""Tests for synth.evaluation.propensity: pMSE near its null for same-distribution data, near max when separable."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from synth.evaluation.encoding import Encoded
from synth.evaluation.propensity import propensity_scores
from tests.conftest import DIABETES_CSV, encoded_split

DIABETES = str(DIABETES_CSV)


@pytest.fixture(scope="module")
def halves():
    table = pl.read_csv(DIABETES, null_values=["?"], n_rows=4_000, infer_schema_length=None).to_arrow()
    layout, (a, b) = encoded_split(table, 2_000)
    return layout, a, b


def test_two_halves_of_real_data_are_indistinguishable(halves):
    layout, a, b = halves
    result = propensity_scores(layout, a, b, np.random.default_rng(1))
    assert result["propensity"]["c"] == pytest.approx(0.5)
    assert 0.3 < result["pmse_ratio"] < 3.0
    assert abs(result["propensity_auc"] - 0.5) < 0.06


def test_shifted_data_are_separated(halves):
    layout, a, b = halves
    shifted = Encoded(b.numeric + 50.0, b.codes)  # every number moved far out of the real range
    result = propensity_scores(layout, a, shifted, np.random.default_rng(1))
    assert result["pmse"] == pytest.approx(result["pmse_max"], rel=0.05)
    assert result["propensity_auc"] > 0.99
    assert result["pmse_ratio"] > 20


def test_c_follows_the_sizes(halves):
    layout, a, b = halves
    result = propensity_scores(layout, a, b.take(np.arange(500)), np.random.default_rng(2))
    assert result["propensity"]["c"] == pytest.approx(500 / 2_500)
    assert result["pmse_max"] == pytest.approx(0.2 * 0.8)
