"""Tests for synth.evaluation.correlation: Cramer's V, correlation ratio, similarity."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from synth.config import parse_config
from synth.evaluation.correlation import association_matrices, correlation_ratio, correlation_scores, cramers_v
from synth.evaluation.encoding import Encoded, Layout, encode
from synth.schema import infer_schema
from tests.conftest import HEART_CSV

HEART = str(HEART_CSV)


@pytest.fixture(scope="module")
def heart():
    table = pl.read_csv(HEART, infer_schema_length=None).to_arrow()
    schema = infer_schema(table, parse_config({"columns": {"site": "categorical", "cp": "categorical"}}))
    return table, schema


def test_cramers_v_perfect_and_independent():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, 5_000)
    assert cramers_v(x, x) == pytest.approx(1.0)
    assert cramers_v(x, (x + 1) % 4) == pytest.approx(1.0)  # relabelled: still perfect
    assert cramers_v(x, rng.integers(0, 3, 5_000)) < 0.03  # bias-corrected: near 0 when independent


def test_correlation_ratio_known_values():
    groups = np.repeat([0, 1, 2], 100)
    assert correlation_ratio(groups, groups * 10.0) == pytest.approx(1.0)
    # Group means equal: eta = 0.
    assert correlation_ratio(groups, np.tile(np.arange(100.0), 3)) == pytest.approx(0.0, abs=1e-12)
    # Between-group SS 200 of total 200 + 300*var(within): hand computed.
    values = groups.astype(float) + np.tile([-1.0, 1.0], 150)
    assert correlation_ratio(groups, values) == pytest.approx(np.sqrt(200 / 500))


def test_identical_data_similarity_one_and_broken_links_lower(heart):
    table, schema = heart
    layout, (real, same) = encode(schema, table, table)
    metrics, figures = correlation_scores(layout, real, same)
    assert metrics["correlation_similarity"] == pytest.approx(1.0)
    assert metrics["correlation"]["spearman_similarity"] == pytest.approx(1.0)
    # Shuffle every column independently: associations vanish, similarity drops.
    rng = np.random.default_rng(1)
    shuffled = Encoded(
        np.column_stack([rng.permutation(c) for c in real.numeric.T]),
        np.column_stack([rng.permutation(c) for c in real.codes.T]).astype(np.int32),
    )
    broken = correlation_scores(layout, real, shuffled)[0]
    assert broken["correlation_similarity"] < 0.97
    assert np.array(figures["difference"]).shape == (len(layout.columns),) * 2


def test_pearson_entry_matches_numpy(heart):
    table, schema = heart
    layout, (real,) = encode(schema, table)
    from synth.evaluation.correlation import association_matrices

    pearson, _, _ = association_matrices(layout, real)
    i, j = layout.numeric.index("age"), layout.numeric.index("thalach")
    x, y = real.numeric[:, i], real.numeric[:, j]
    both = ~(np.isnan(x) | np.isnan(y))
    assert pearson[i, j] == pytest.approx(np.corrcoef(x[both], y[both])[0, 1])


def test_spearman_known_values():
    # y = x^3 is monotone: Spearman's rho is exactly 1 while Pearson's r is not. A synthetic y = exp(x) keeps
    # every rank (Spearman similarity 1, Pearson not); a reversed y turns rho into -1: similarity
    # 1 - |1 - (-1)| / 2 = 0.
    layout = Layout(numeric=("x", "y"), categorical=(), levels=())
    x = np.linspace(-2, 2, 201)
    codes = np.zeros((len(x), 0), dtype=np.int32)
    real = Encoded(np.column_stack([x, x**3]), codes)
    pearson, spearman, _ = association_matrices(layout, real)
    assert spearman[0, 1] == pytest.approx(1.0) and pearson[0, 1] < 0.95
    same_ranks = correlation_scores(layout, real, Encoded(np.column_stack([x, np.exp(x)]), codes))[0]["correlation"]
    assert same_ranks["spearman_similarity"] == pytest.approx(1.0)
    r_real, r_synthetic = np.corrcoef(x, x**3)[0, 1], np.corrcoef(x, np.exp(x))[0, 1]
    assert same_ranks["pearson_similarity"] == pytest.approx(1 - abs(r_real - r_synthetic) / 2)
    assert same_ranks["pearson_similarity"] < 0.995
    reversed_ranks = correlation_scores(layout, real, Encoded(np.column_stack([x, -x]), codes))[0]["correlation"]
    assert reversed_ranks["spearman_similarity"] == pytest.approx(0.0)
    # Ties take their mean rank: rho of (1, 2, 2, 3) with (1, 2, 3, 4) is 0.9487 (= r of 1, 2.5, 2.5, 4 and 1..4).
    tied = Encoded(np.array([[1.0, 1], [2, 2], [2, 3], [3, 4]]), np.zeros((4, 0), dtype=np.int32))
    assert association_matrices(layout, tied)[1][0, 1] == pytest.approx(np.corrcoef([1, 2.5, 2.5, 4], [1, 2, 3, 4])[0, 1])
