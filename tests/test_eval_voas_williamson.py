"""Tests for synth.evaluation.voas_williamson: hand-computed tables, identical and independent data."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from synth.config import parse_config
from synth.evaluation.encoding import Encoded, Layout, encode
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


def test_unequal_sizes_hand_computed_as_synthpop_does():
    # synthpop's utility.tab: tabd <- table(data) * nrow(syn) / nrow(data); VW = sum((syn - tabd)^2 / ((syn + tabd) / 2)).
    # real [10, 30] (n = 40) scaled to the synthetic 80 rows: [20, 60]; synthetic [30, 50].
    statistic, df = vw_statistic(np.array([10, 30]), np.array([30, 50]))
    assert statistic == pytest.approx(10**2 / 25 + 10**2 / 55)  # 5.8182
    assert df == 1
    # The other way round: real [30, 50] (n = 80) scaled to 40 synthetic rows: [15, 25]; synthetic [10, 30].
    assert vw_statistic(np.array([30, 50]), np.array([10, 30]))[0] == pytest.approx(5**2 / 12.5 + 5**2 / 27.5)


def test_numbers_are_grouped_at_the_quantiles_of_both_tables_together():
    # Pooled values 1..10 (real 1..5, synthetic 6..10): quintile cuts at 2.8, 4.6, 6.4, 8.2 (R type 7),
    # so real falls in groups [1, 1, 2, 2, 3] and synthetic in [3, 4, 4, 5, 5]. Against a category held
    # constant, the 2-way table has cells g1..g5: real [2, 2, 1, 0, 0] -> scaled x1; synthetic [0, 0, 1, 2, 2].
    layout = Layout(numeric=("x",), categorical=("c",), levels=(("a",),))
    real = Encoded(np.arange(1.0, 6.0)[:, None], np.ones((5, 1), dtype=np.int32))
    synthetic = Encoded(np.arange(6.0, 11.0)[:, None], np.ones((5, 1), dtype=np.int32))
    table = voas_williamson(layout, real, synthetic)["voas_williamson"]["per_table"][0]
    # cells: (0-2)^2/1 + (0-2)^2/1 + 0 + (2-0)^2/1 + (2-0)^2/1 = 16, df = 5 - 1.
    assert table["vw"] == pytest.approx(16.0) and table["df"] == 4


@pytest.mark.parametrize("factor", [1, 3])
def test_a_sample_drawn_from_the_real_proportions_has_ratio_one_at_any_size(factor):
    # Synthetic rows resampled from the real rows follow the real cell proportions: VW/df ~ chi2(df)/df ~ 1
    # whatever their number. An independent real sample carries the real table's noise too: 1 + n_syn/n_real.
    # 8 columns of 5 levels: 28 tables of 24 degrees of freedom. They share the real table's noise, so the
    # mean ratio varies by about 0.1 (drawn) and 0.25 (independent) from one real table to the next.
    rng = np.random.default_rng(factor)
    layout = Layout(numeric=(), categorical=tuple("abcdefgh"), levels=(("1", "2", "3", "4", "5"),) * 8)
    population = rng.integers(1, 6, size=(20_000, 8)).astype(np.int32)
    population[:, 1] = np.where(rng.random(20_000) < 0.5, population[:, 0], population[:, 1])  # a and b linked
    real = Encoded(np.zeros((4_000, 0)), population[:4_000])
    resampled = Encoded(np.zeros((4_000 * factor, 0)), real.codes[rng.integers(0, 4_000, 4_000 * factor)])
    independent = Encoded(np.zeros((4_000 * factor, 0)), population[4_000 : 4_000 * (1 + factor)])
    drawn = voas_williamson(layout, real, resampled)["voas_williamson"]["mean_ratio"]
    fresh = voas_williamson(layout, real, independent)["voas_williamson"]["mean_ratio"]
    assert drawn == pytest.approx(1.0, abs=0.3)
    assert fresh == pytest.approx(1 + factor, rel=0.25)
