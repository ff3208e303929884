"""Tests for synth.evaluation.pca: fitted on real rows only, both projected, densities only."""

from __future__ import annotations

import numpy as np
import pytest

from synth.config import parse_config
from synth.evaluation.encoding import Encoded, encode
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
