"""Tests for synth.evaluation.distance: DCR and NNDR against the holdout baseline."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from synth.evaluation.distance import distance_scores, nndr
from synth.evaluation.encoding import Encoded
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


def test_a_synthetic_outlier_does_not_stretch_the_ruler(split):
    # The numeric ranges come from real rows only: one absurd synthetic value must not shrink every
    # distance (it would make real holdout rows, and near-copies, look farther apart than they are).
    train, holdout = split
    fresh, baseline = holdout.take(np.arange(0, 1_000, 2)), holdout.take(np.arange(1, 1_000, 2))
    outlier = fresh.take(np.array([0]))
    outlier.numeric[:] = 1e9
    with_outlier = Encoded(np.vstack([fresh.numeric, outlier.numeric]), np.vstack([fresh.codes, outlier.codes]))
    alone, _ = distance_scores(train, baseline, fresh, rows=10_000, rng=np.random.default_rng(0))
    stretched, _ = distance_scores(train, baseline, with_outlier, rows=10_000, rng=np.random.default_rng(0))
    assert stretched["dcr_holdout_median"] == alone["dcr_holdout_median"]
    assert stretched["distance"]["dcr_holdout_p05"] == alone["distance"]["dcr_holdout_p05"]


def test_tail_shares_count_rows_at_most_as_far_as_the_holdouts_quantile():
    # 1-D: training rows at 0, 4, ..., 128; holdout rows at 4k + 1 (DCR 1 / 128 each, all tied, exact in
    # float32) and synthetic rows, 30 at DCR 0 (copies) and 70 at the holdout's distance: the holdout's 5%
    # quantile is its own tied distance, so both shares count every row at or below it: 1.0 and 1.0.
    # Moving the 70 farther (4k + 2, DCR 2 / 128) leaves only the 30 copies: 0.3.
    def column(values):
        return Encoded(np.asarray(values, dtype=float)[:, None], np.zeros((len(values), 0), dtype=np.int32))

    train = column(4.0 * np.arange(33))
    holdout = column(4.0 * np.arange(32) + 1)
    copies, others = 4.0 * np.arange(30), 4.0 * (np.arange(70) % 32)
    tied, farther = column(np.r_[copies, others + 1]), column(np.r_[copies, others + 2])
    shares = [distance_scores(train, holdout, s, rows=1_000, rng=np.random.default_rng(0))[0]["distance"]
              for s in (tied, farther)]
    assert shares[0]["dcr_holdout_tail_share"] == 1.0 and shares[0]["dcr_tail_share"] == 1.0
    assert shares[1]["dcr_tail_share"] == pytest.approx(0.3)
    assert shares[1]["tail_quantile"] == 0.05
