"""Tests for synth.evaluation.pca: fitted on real rows only, both projected, densities only."""

from __future__ import annotations

import numpy as np
import pytest

from synth.config import parse_config
from synth.evaluation.encoding import Encoded, Layout, encode
from synth.evaluation.pca import pca_scores
from synth.schema import infer_schema
from tests.conftest import breast_cancer_table


@pytest.fixture(scope="module")
def wisconsin():
    table = breast_cancer_table()
    return table, infer_schema(table, parse_config({}))


def test_identical_data_is_similar_everywhere(wisconsin):
    table, schema = wisconsin
    layout, (real, same) = encode(schema, table, table)
    metrics, figures = pca_scores(layout, real, same, seed=0)
    assert metrics["pca_similarity"] == pytest.approx(1.0)
    pca = metrics["pca"]
    assert pca["explained_variance_synthetic"] == pytest.approx(pca["explained_variance_real"], abs=1e-4)


def test_axes_come_from_the_real_rows_only(wisconsin):
    table, schema = wisconsin
    layout, (real, other) = encode(schema, table, table.slice(0, 100))
    noise = Encoded(other.numeric * 3 + 7, other.codes)  # very different synthetic data
    first = pca_scores(layout, real, other, seed=0)[0]["pca"]["explained_variance_real"]
    second = pca_scores(layout, real, noise, seed=0)[0]["pca"]["explained_variance_real"]
    assert first == second  # the synthetic table cannot move the real axes


def test_collapsed_synthetic_data_scores_low(wisconsin):
    table, schema = wisconsin
    layout, (real,) = encode(schema, table)
    collapsed = Encoded(np.tile(np.nanmean(real.numeric, axis=0), (len(real), 1)), real.codes[:1].repeat(len(real), 0))
    assert pca_scores(layout, real, collapsed, seed=0)[0]["pca_similarity"] < 0.1


def test_density_grid_blanks_sparse_cells(wisconsin):
    table, schema = wisconsin
    layout, (real, same) = encode(schema, table, table)
    _, grid = pca_scores(layout, real, same, seed=0, suppress_below=10)
    cells = np.array(grid["real"]) * len(real)
    shown = cells[cells > 0]
    assert len(shown) and shown.min() >= 10 - 1e-6


def _pair(r: float, z1: np.ndarray, z2: np.ndarray) -> Encoded:
    """Two columns with sample correlation exactly ``r`` and equal variances."""
    return Encoded(np.column_stack([z1, r * z1 + np.sqrt(1 - r * r) * z2]), np.zeros((len(z1), 0), dtype=np.int32))


def test_known_explained_variance_and_similarity():
    # Standardised x and y with correlation r have principal axes (1, 1) and (1, -1) with variances 1 + r
    # and 1 - r: explained shares (1 + r) / 2 and (1 - r) / 2. Synthetic rows with correlation s (same
    # scale) spread (1 + s) / 2 and (1 - s) / 2 along those axes, so the similarity is 1 - |r - s|.
    rng = np.random.default_rng(0)
    z = rng.normal(size=(2_000, 2))
    z -= z.mean(axis=0)
    z1 = z[:, 0] / np.linalg.norm(z[:, 0])
    z2 = z[:, 1] - (z[:, 1] @ z1) * z1  # orthogonal to z1, same norm
    z2 /= np.linalg.norm(z2)
    layout = Layout(numeric=("x", "y"), categorical=(), levels=())
    metrics, _ = pca_scores(layout, _pair(0.8, z1, z2), _pair(0.2, z1, z2), seed=0)
    assert metrics["pca"]["explained_variance_real"] == pytest.approx([0.9, 0.1], abs=1e-5)
    assert metrics["pca"]["explained_variance_synthetic"] == pytest.approx([0.6, 0.4], abs=1e-5)
    assert metrics["pca_similarity"] == pytest.approx(1 - abs(0.8 - 0.2))
