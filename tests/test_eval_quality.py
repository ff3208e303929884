"""Tests for synth.evaluation.quality and .diagnostic (SDMetrics reports) on known cases."""

from __future__ import annotations

import math

import polars as pl
import pytest

from synth.config import parse_config
from synth.evaluation.diagnostic import diagnostic_scores
from synth.evaluation.quality import quality_scores
from synth.schema import infer_schema
from tests.conftest import HEART_CSV

HEART = str(HEART_CSV)


@pytest.fixture(scope="module")
def heart():
    table = pl.read_csv(HEART, infer_schema_length=None).to_arrow()
    return table.to_pandas(), infer_schema(table, parse_config({}))


def test_identical_data_score_one(heart):
    frame, schema = heart
    quality = quality_scores(frame, frame, schema)
    assert quality["quality_score"] == pytest.approx(1.0)
    diagnostic = diagnostic_scores(frame, frame, schema)
    assert diagnostic["validity"] == pytest.approx(1.0) and diagnostic["diagnostic_score"] == pytest.approx(1.0)


def test_out_of_range_and_unknown_values_lower_validity(heart):
    frame, schema = heart
    broken = frame.copy()
    broken["age"] = broken["age"] + 200  # every age beyond the real range
    broken["site"] = "nowhere"  # a category the real data never had
    diagnostic = diagnostic_scores(frame, broken, schema)
    assert diagnostic["validity_scores"]["age"] == 0.0
    assert diagnostic["validity_scores"]["site"] == 0.0
    assert quality_scores(frame, broken, schema)["column_shape_scores"]["age"] < 0.05


def test_a_column_the_synthetic_data_never_fills_scores_nan_and_the_rest_still_count(heart):
    frame, schema = heart
    empty = frame.copy()
    empty["site"] = None
    quality = quality_scores(frame, empty, schema)
    assert math.isnan(quality["column_shape_scores"]["site"])
    others = [v for k, v in quality["column_shape_scores"].items() if k != "site"]
    assert quality["column_shapes"] == pytest.approx(sum(others) / len(others)) and quality["column_shapes"] > 0.99


def test_a_table_without_column_pairs_scores_its_column_shapes(heart):
    frame, schema = heart
    one = schema.columns[[c.name for c in schema.columns].index("age")]
    single = type(schema)(columns=(one,))
    quality = quality_scores(frame[["age"]], frame[["age"]].sample(frac=1.0, random_state=0), single)
    assert math.isnan(quality["column_pair_trends"]) and quality["quality_score"] == pytest.approx(1.0)
