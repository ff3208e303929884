"""Tests for synth.evaluation.distance: DCR and NNDR against the holdout baseline."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from synth.evaluation.distance import distance_scores, nndr
from tests.conftest import DIABETES_CSV, encoded_split

DIABETES = str(DIABETES_CSV)


@pytest.fixture(scope="module")
def split():
    table = pl.read_csv(DIABETES, null_values=["?"], n_rows=3_000, infer_schema_length=None).to_arrow()
    _, (train, holdout) = encoded_split(table, 2_000)
    return train, holdout


def test_copies_sit_at_distance_zero(split):
    train, holdout = split
    metrics, figures = distance_scores(train, holdout, train, rows=500, rng=np.random.default_rng(1))
    assert metrics["dcr_median"] == 0.0
    assert metrics["nndr_median"] == 0.0  # the copy is the nearest, the second nearest is not the same row
    assert metrics["distance"]["dcr_zero_share"] == 1.0
    assert metrics["dcr_holdout_median"] > 0.02
    assert metrics["distance"]["synthetic_rows"] == 500 and metrics["distance"]["reference_rows"] == 2_000
    assert sum(figures["synthetic"]) == pytest.approx(1.0)


def test_unseen_rows_look_like_the_holdout_baseline(split):
    train, holdout = split
    fresh, baseline = holdout.take(np.arange(0, 1_000, 2)), holdout.take(np.arange(1, 1_000, 2))
    metrics, _ = distance_scores(train, baseline, fresh, rows=500, rng=np.random.default_rng(2))
    assert metrics["dcr_median"] == pytest.approx(metrics["dcr_holdout_median"], rel=0.15)
    assert metrics["nndr_median"] == pytest.approx(metrics["nndr_holdout_median"], rel=0.15)


def test_nndr_definition():
    distances = np.array([[0.0, 0.5], [0.2, 0.4], [0.0, 0.0], [0.3, 0.3]])
    assert nndr(distances).tolist() == [0.0, 0.5, 1.0, 1.0]
