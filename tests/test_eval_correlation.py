"""Tests for synth.evaluation.correlation: Cramer's V, correlation ratio, similarity."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from synth.config import parse_config
from synth.evaluation.correlation import correlation_ratio, correlation_scores, cramers_v
from synth.evaluation.encoding import Encoded, encode
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
