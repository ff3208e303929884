"""Tests for synth.evaluation.utility: TSTR equals TRTR on real data, falls to chance on noise."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from synth.config import parse_config
from synth.evaluation.encoding import Encoded, encode
from synth.evaluation.utility import utility_ratio, utility_scores
from synth.schema import infer_schema
from tests.conftest import DIABETES_CSV, PIMA_CSV, encoded_split

PIMA = str(PIMA_CSV)
DIABETES = str(DIABETES_CSV)


@pytest.fixture(scope="module")
def pima():
    table = pl.read_csv(PIMA).to_arrow()
    layout, (train, holdout) = encoded_split(table, 600)
    return layout, train, holdout


def test_synthetic_equal_to_real_gives_equal_scores(pima):
    layout, train, holdout = pima
    metrics, predictions = utility_scores(layout, "Outcome", train, holdout, train, 10_000, np.random.default_rng(0))
    assert metrics["tstr"] == metrics["trtr"]
    assert metrics["utility_ratio"] == 1.0
    assert metrics["trtr"]["auc"] > 0.75  # glucose, BMI and age do predict diabetes
    assert metrics["utility"]["holdout_test_rows"] == len(holdout)
    assert np.array_equal(predictions.tstr, predictions.trtr)


def test_labels_shuffled_give_chance():
    # A larger holdout than Pima's 168 rows, so chance is 0.5 +- 0.02 rather than +- 0.07.
    table = pl.read_csv(DIABETES, null_values=["?"], n_rows=5_000, infer_schema_length=None).to_arrow()
    schema = infer_schema(table, parse_config({}))
    layout, (train, holdout) = encode(schema, table.slice(0, 3_000), table.slice(3_000))
    j = layout.categorical.index("diabetesMed")
    codes = train.codes.copy()
    codes[:, j] = np.random.default_rng(3).permutation(codes[:, j])
    metrics, _ = utility_scores(layout, "diabetesMed", train, holdout, Encoded(train.numeric, codes), 10_000,
                                np.random.default_rng(0))
    assert metrics["trtr"]["auc"] > 0.95  # the medication columns give it away
    assert abs(metrics["tstr"]["auc"] - 0.5) < 0.06
    # Chance keeps none of the real model's skill: (AUC - 0.5) / (AUC_TRTR - 0.5) ~ 0, not AUC / AUC_TRTR ~ 0.5.
    assert abs(metrics["utility_ratio"]) < 0.13
    assert metrics["utility_ratio"] == pytest.approx((metrics["tstr"]["auc"] - 0.5) / (metrics["trtr"]["auc"] - 0.5))


def test_numeric_target_reports_r2(pima):
    layout, train, holdout = pima
    metrics, predictions = utility_scores(layout, "Glucose", train, holdout, train, 10_000, np.random.default_rng(0))
    assert metrics["utility"]["task"] == "regression"
    assert set(metrics["tstr"]) == {"r2", "mae"}
    assert metrics["tstr"]["r2"] == pytest.approx(metrics["trtr"]["r2"])
    assert not predictions.classification


def test_utility_ratio_is_the_share_of_skill_above_chance():
    assert utility_ratio(0.7, 0.9, classification=True) == pytest.approx(0.5)  # (0.7 - 0.5) / (0.9 - 0.5)
    assert utility_ratio(0.5, 0.9, classification=True) == 0.0
    assert utility_ratio(0.9, 0.9, classification=True) == 1.0
    assert utility_ratio(0.3, 0.6, classification=False) == pytest.approx(0.5)  # R^2: chance is 0
    assert utility_ratio(0.6, 0.5, classification=True) is None  # the real model is no better than chance
    assert utility_ratio(None, 0.9, classification=True) is None


def test_a_class_the_synthetic_sample_holds_once_trains_without_a_crash(pima):
    """Early stopping's stratified inner split needs two rows per class; a rare class once does not stop TSTR."""
    layout, train, holdout = pima
    j = layout.categorical.index("Outcome")
    codes = train.codes.copy()
    codes[:, j] = codes[0, j]  # every synthetic row of one class ...
    other = next(c for c in np.unique(train.codes[:, j]) if c != codes[0, j])
    codes[1, j] = other  # ... but one
    metrics, _ = utility_scores(layout, "Outcome", train, holdout, Encoded(train.numeric, codes), 10_000,
                                np.random.default_rng(0))
    assert metrics["tstr"]["auc"] is not None and metrics["trtr"]["auc"] > 0.75
