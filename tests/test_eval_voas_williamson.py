"""Tests for synth.evaluation.voas_williamson: hand-computed tables, identical and independent data."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from synth.config import parse_config
from synth.evaluation.encoding import encode
from synth.evaluation.voas_williamson import voas_williamson, vw_statistic
from synth.schema import infer_schema
from tests.conftest import PIMA_CSV

PIMA = str(PIMA_CSV)


def test_hand_computed_table():
    # real [10, 30], synthetic [20, 20]: (10^2 / 15) + (10^2 / 25) = 10.667 on 1 degree of freedom.
    statistic, df = vw_statistic(np.array([10, 30]), np.array([20, 20]))
    assert statistic == pytest.approx(100 / 15 + 100 / 25)
    assert df == 1


def test_real_counts_are_rescaled_to_the_synthetic_total():
    # Same proportions at twice the size: a perfect fit.
    assert vw_statistic(np.array([10, 30, 60]), np.array([20, 60, 120])) == (0.0, 2)


def test_empty_cells_do_not_count_as_degrees_of_freedom():
    assert vw_statistic(np.array([5, 0, 5]), np.array([5, 0, 5]))[1] == 1


@pytest.fixture(scope="module")
def pima():
    table = pl.read_csv(PIMA).to_arrow()
    return table, infer_schema(table, parse_config({}))


def test_identical_tables_fit_perfectly(pima):
    table, schema = pima
    layout, (real, same) = encode(schema, table, table)
    result = voas_williamson(layout, real, same)["voas_williamson"]
    n = len(layout.columns)
    assert result["tables"] == n * (n - 1) // 2
    assert result["mean_ratio"] == 0.0
    assert all(t["p_value"] == pytest.approx(1.0) for t in result["per_table"])


def test_broken_relationships_fit_badly(pima):
    table, schema = pima
    layout, (real, same) = encode(schema, table, table)
    rng = np.random.default_rng(0)
    shuffled = same.take(np.arange(len(same)))
    shuffled.numeric[:] = np.column_stack([rng.permutation(c) for c in same.numeric.T])
    result = voas_williamson(layout, real, shuffled)["voas_williamson"]
    glucose_outcome = next(t for t in result["per_table"] if set(t["columns"]) == {"Glucose", "Outcome"})
    assert glucose_outcome["ratio"] > 5 and glucose_outcome["p_value"] < 1e-6
