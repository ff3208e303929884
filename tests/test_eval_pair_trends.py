"""Tests for synth.evaluation.pair_trends: known answers, the real data's bins, thresholds."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from synth.config import ColumnKind
from synth.evaluation.pair_trends import pair_trend_details, pair_trends_score
from synth.schema import ColumnSpec, Schema


def _schema(**kinds: ColumnKind) -> Schema:
    return Schema(columns=tuple(ColumnSpec(name=name, kind=kind, arrow_type="string") for name, kind in kinds.items()))


def _score(real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema) -> float:
    return pair_trends_score(pair_trend_details(real, synthetic, schema))


def test_a_dependent_pair_drawn_independently_scores_its_total_variation():
    # Real: b copies a (two balanced classes): joint (0.5, 0, 0, 0.5). Independent
    # synthetic: 0.25 in each cell, total variation 0.5, score 0.5.
    real = pd.DataFrame({"a": ["x", "y"] * 500, "b": ["x", "y"] * 500})
    synthetic = pd.DataFrame({"a": ["x", "x", "y", "y"] * 250, "b": ["x", "y"] * 500})
    schema = _schema(a=ColumnKind.CATEGORICAL, b=ColumnKind.CATEGORICAL)
    details = pair_trend_details(real, synthetic, schema)
    assert details.loc[0, "real_association"] == pytest.approx(1.0)
    assert bool(details.loc[0, "scored"])
    assert _score(real, synthetic, schema) == pytest.approx(0.5)
    assert _score(real, real, schema) == pytest.approx(1.0)


def test_numbers_are_cut_on_the_real_bins_so_missing_rare_extremes_cost_only_their_share():
    # A count 1-9 with 0.5% of rows at 10-16, tied to a category. A synthetic copy without
    # the rare rows differs in 0.5% of the mass; cutting each side on its own range (as
    # SDMetrics 0.32's report does) would move every synthetic row into another bin.
    rng = np.random.default_rng(0)
    count = rng.integers(1, 10, 20_000)
    count[:100] = rng.integers(10, 17, 100)
    real = pd.DataFrame({"count": count, "kind": np.where(count >= 5, "many", "few")})
    synthetic = real.iloc[100:].sample(frac=1.0, replace=True, random_state=1).reset_index(drop=True)
    schema = _schema(count=ColumnKind.NUMERICAL, kind=ColumnKind.CATEGORICAL)
    assert bool(pair_trend_details(real, synthetic, schema).loc[0, "scored"])
    assert _score(real, synthetic, schema) > 0.98


def test_only_pairs_with_a_real_association_are_scored_and_none_means_every_pair():
    rng = np.random.default_rng(1)
    a = rng.normal(size=5_000)
    real = pd.DataFrame({"a": a, "b": a + 0.1 * rng.normal(size=5_000), "c": rng.normal(size=5_000)})
    schema = _schema(a=ColumnKind.NUMERICAL, b=ColumnKind.NUMERICAL, c=ColumnKind.NUMERICAL)
    shuffled = real.assign(b=rng.permutation(real["b"].to_numpy()))  # a-b correlation ~1 -> ~0
    details = pair_trend_details(real, shuffled, schema)
    assert details["scored"].tolist() == [True, False, False]  # (a, b), (a, c), (b, c)
    assert details["score"].notna().tolist() == [True, False, False]
    assert _score(real, shuffled, schema) == pytest.approx(0.5, abs=0.02)  # 1 - |0.995 - 0| / 2
    unrelated = real[["a", "c"]]
    details = pair_trend_details(unrelated, unrelated, _schema(a=ColumnKind.NUMERICAL, c=ColumnKind.NUMERICAL))
    assert not details["scored"].any() and _score(unrelated, unrelated, _schema(
        a=ColumnKind.NUMERICAL, c=ColumnKind.NUMERICAL)) == pytest.approx(1.0)


def test_dates_missing_values_and_identifiers_are_handled_and_the_score_is_repeatable():
    rng = np.random.default_rng(2)
    days = pd.Series(pd.to_datetime("2020-01-01") + pd.to_timedelta(rng.integers(0, 700, 3_000), unit="D"))
    days[::50] = pd.NaT
    real = pd.DataFrame({"id": np.arange(3_000), "when": days,
                         "late": np.where(days > pd.Timestamp("2020-12-31"), "yes", None)})
    schema = _schema(id=ColumnKind.IDENTIFIER, when=ColumnKind.DATETIME, late=ColumnKind.CATEGORICAL)
    details = pair_trend_details(real, real, schema)
    assert list(zip(details["column_1"], details["column_2"])) == [("when", "late")]  # no identifier
    assert bool(details.loc[0, "scored"]) and details.loc[0, "score"] == pytest.approx(1.0)
    shuffled = real.assign(late=rng.permutation(real["late"].to_numpy()))
    first, second = _score(real, shuffled, schema), _score(real, shuffled, schema)
    assert first == second < 0.8


def test_a_constant_synthetic_column_leaves_its_pair_unscored_not_the_run_failed():
    rng = np.random.default_rng(3)
    a = rng.normal(size=2_000)
    real = pd.DataFrame({"a": a, "b": 2 * a + 0.1 * rng.normal(size=2_000), "k": np.where(a > 0, "hi", "lo")})
    schema = _schema(a=ColumnKind.NUMERICAL, b=ColumnKind.NUMERICAL, k=ColumnKind.CATEGORICAL)
    flat = real.assign(b=1.0)
    details = pair_trend_details(real, flat, schema).set_index(["column_1", "column_2"])
    assert np.isnan(details.loc[("a", "b"), "score"]) and bool(details.loc[("a", "b"), "scored"])
    assert _score(real, flat, schema) == pytest.approx(details["score"].dropna().mean())


def test_dates_held_as_python_objects_are_read_as_dates():
    from synth.evaluation.pair_trends import as_number

    column = pd.Series([dt.date(2020, 1, 1), None, dt.date(2020, 1, 2)], dtype=object)
    numbers = as_number(column)
    assert np.isnan(numbers[1]) and numbers[2] - numbers[0] == pytest.approx(86_400e9)
