"""Tests for synth.evaluation.fairness: parity and odds gaps on hand-made predictions."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from synth.evaluation.fairness import demographic_parity_difference, equalized_odds_difference, fairness_scores
from synth.evaluation.utility import utility_scores
from tests.conftest import PIMA_CSV, encoded_split

PIMA = str(PIMA_CSV)


def test_demographic_parity_known_value():
    groups = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    predicted = np.array([1, 1, 1, 0, 1, 0, 0, 0])  # 75 % vs 25 % positive
    assert demographic_parity_difference(groups, predicted) == pytest.approx(0.5)
    assert demographic_parity_difference(groups, np.ones(8, dtype=int)) == 0.0


def test_equalized_odds_known_value():
    groups = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    truth = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    predicted = np.array([1, 1, 0, 0, 1, 0, 1, 0])  # TPR 1 vs 0.5, FPR 0 vs 0.5
    assert equalized_odds_difference(groups, truth, predicted) == pytest.approx(0.5)
    assert equalized_odds_difference(groups, truth, truth) == 0.0  # a perfect model is fair


def test_representation_and_gaps_on_real_data():
    table = pl.read_csv(PIMA).to_arrow()
    layout, (train, holdout) = encoded_split(table, 600)
    _, predictions = utility_scores(layout, "Outcome", train, holdout, train, 10_000, np.random.default_rng(0))
    result = fairness_scores(layout, ["Age"], predictions, train, train, suppress_below=10)["fairness"]["Age"]
    shares = result["representation"]
    assert sum(s["real"] for s in shares.values()) == pytest.approx(1.0)
    assert all(s["real"] == s["synthetic"] for s in shares.values())  # synthetic = real
    assert result["tstr"] == result["trtr"]
    assert 0 <= result["tstr"]["demographic_parity_difference"] <= 1
    assert result["tstr"]["groups"] == 4  # age quartiles


def test_needs_protected_columns_and_a_categorical_target():
    assert "skipped" in fairness_scores(None, [], None, None, None, 10)["fairness"]
    assert "skipped" in fairness_scores(None, ["Age"], None, None, None, 10)["fairness"]


def test_small_groups_are_counted_in_patients():
    # Group "b" has 30 holdout rows but they are one patient's: with patients known it is too small to
    # report on (suppress_below 10), so only group "a" (30 patients) is compared.
    from synth.evaluation.encoding import Encoded, Layout
    from synth.evaluation.utility import Predictions

    layout = Layout(numeric=(), categorical=("sex", "y"), levels=(("a", "b"), ("0", "1")))
    codes = np.column_stack([np.repeat([1, 2], 30), np.tile([1, 2], 30)]).astype(np.int32)
    holdout = Encoded(np.zeros((60, 0)), codes)
    truth = codes[:, 1]
    predicted = np.where(codes[:, 0] == 1, truth, 3 - truth)  # right for "a", always wrong for "b"
    patients = np.r_[np.arange(30), np.full(30, 30)]
    for who, groups in ((None, 2), (patients, 1)):
        predictions = Predictions(holdout, truth, predicted, truth, classification=True, holdout_patients=who)
        gaps = fairness_scores(layout, ["sex"], predictions, holdout, holdout, 10)["fairness"]["sex"]["tstr"]
        assert gaps["groups"] == groups
        assert gaps["equalized_odds_difference"] == (1.0 if groups == 2 else 0.0)


def test_numeric_groups_are_named_by_rounded_cuts():
    table = pl.read_csv(PIMA).to_arrow()
    layout, (train, holdout) = encoded_split(table, 600)
    _, predictions = utility_scores(layout, "Outcome", train, holdout, train, 10_000, np.random.default_rng(0))
    shares = fairness_scores(layout, ["BMI"], predictions, train, train, 10)["fairness"]["BMI"]["representation"]
    # BMI's quartiles (27.1, 31.9, 36.125 in this sample) are real values; the labels show them on a grid of
    # 2 (a nice step near a twentieth of the 5-95% spread, 21.8 to 44).
    intervals = [label for label in shares if label.startswith("[")]
    assert intervals == ["[-inf, 28)", "[28, 32)", "[32, 36)", "[36, inf)"]
