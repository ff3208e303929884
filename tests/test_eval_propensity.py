"""Tests for synth.evaluation.propensity: pMSE 0 when nothing can be learnt, c(1 - c) when separable, by patient."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import pyarrow.compute as pc

from synth.config import load_config
from synth.evaluation.encoding import Encoded, encode
from synth.evaluation.propensity import pmse, propensity_scores
from synth.holdout import split_holdout
from synth.schema import infer_schema
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


def test_pmse_known_values():
    assert pmse(np.full(10, 0.2), 0.2) == 0.0  # scores at the base rate: nothing learnt
    # Perfect separation, 8 real rows scored 0 and 2 synthetic rows scored 1, c = 0.2:
    # (8 * 0.2^2 + 2 * 0.8^2) / 10 = 0.16 = c (1 - c).
    assert pmse(np.r_[np.zeros(8), np.ones(2)], 0.2) == pytest.approx(0.16)


def test_identical_distributions_score_near_zero(halves):
    layout, a, _ = halves
    # Every row on both sides: no classifier can beat the base rate, so pMSE ~ 0 (a boosted model
    # that fits noise still scores a few thousandths, against a maximum of 0.25).
    result = propensity_scores(layout, a, a, np.random.default_rng(1))
    assert result["pmse"] < 0.02 * result["pmse_max"]


def test_separable_tables_of_unequal_size_score_c_times_1_minus_c(halves):
    layout, a, b = halves
    shifted = Encoded(b.numeric[:500] + 50.0, b.codes[:500])  # every number moved far out of the real range
    result = propensity_scores(layout, a, shifted, np.random.default_rng(1))
    assert result["propensity"]["c"] == pytest.approx(0.2)
    assert result["pmse"] == pytest.approx(0.2 * 0.8, rel=0.01)
    assert result["propensity_auc"] > 0.99
    assert result["pmse_ratio"] > 20


def test_c_follows_the_sizes(halves):
    layout, a, b = halves
    result = propensity_scores(layout, a, b.take(np.arange(500)), np.random.default_rng(2))
    assert result["propensity"]["c"] == pytest.approx(500 / 2_500)
    assert result["pmse_max"] == pytest.approx(0.2 * 0.8)


def test_clean_patient_data_is_not_flagged_when_patients_stay_together(mimic_table):
    # Two halves of the MIMIC-III demo's patients (about 115 rows each): the same population, so a
    # ratio about 1. Split by row, the classifier recognises the patients it was fitted on from their
    # other rows and the ratio comes out over a hundred.
    from synth.demo.mimic import DEMO_CONFIG

    schema = infer_schema(mimic_table, load_config(DEMO_CONFIG))
    first, second = split_holdout(mimic_table, schema, 0.5, seed=0)
    layout, (a, b) = encode(schema, first, second)
    patients = [pc.dictionary_encode(t["subject_id"].combine_chunks()).indices.to_numpy() for t in (first, second)]
    by_row = propensity_scores(layout, a, b, np.random.default_rng(0))
    by_patient = propensity_scores(layout, a, b, np.random.default_rng(0), *patients)
    assert by_row["pmse_ratio"] > 20 and by_row["propensity_auc"] > 0.99
    assert by_patient["pmse_ratio"] < 2 and by_patient["propensity"]["split"] == "by patient"
