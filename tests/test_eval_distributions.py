"""Tests for synth.evaluation.distributions: KS / TV on known cases, and no row-level leaks."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from synth.config import parse_config
from synth.evaluation.distributions import OTHER_LABEL, distribution_scores
from synth.evaluation.encoding import Encoded, Layout, encode
from synth.schema import infer_schema
from tests.conftest import HEART_CSV

HEART = str(HEART_CSV)


@pytest.fixture(scope="module")
def heart():
    table = pl.read_csv(HEART, infer_schema_length=None).to_arrow()
    return table, infer_schema(table, parse_config({"columns": {"site": "categorical"}}))


def test_identical_tables_score_one(heart):
    table, schema = heart
    layout, (a, b) = encode(schema, table, table)
    metrics, figures = distribution_scores(layout, a, b)
    assert metrics["distribution_score"] == pytest.approx(1.0)
    assert set(metrics["distribution_scores"]) == set(layout.columns)


def test_ks_and_tv_known_values():
    layout = Layout(numeric=("x",), categorical=("c",), levels=(("a", "b"),))
    real = Encoded(np.arange(100.0)[:, None], np.repeat([[1]], 100, axis=0).astype(np.int32))
    # Shifted by 25 of 100 values: KS = 0.25. Half the rows move to category b: TV = 0.5.
    codes = np.array([[1]] * 50 + [[2]] * 50, dtype=np.int32)
    synthetic = Encoded(np.arange(25.0, 125.0)[:, None], codes)
    scores = distribution_scores(layout, real, synthetic)[0]["distribution_scores"]
    assert scores["x"]["value"] == pytest.approx(0.25)
    assert scores["c"]["value"] == pytest.approx(0.5)
    assert scores["c"]["score"] == pytest.approx(0.5)


def test_disjoint_categories_have_total_variation_one():
    layout = Layout(numeric=(), categorical=("c",), levels=(("a", "b"),))
    real = Encoded(np.zeros((20, 0)), np.ones((20, 1), dtype=np.int32))
    synthetic = Encoded(np.zeros((20, 0)), np.full((20, 1), 2, dtype=np.int32))
    assert distribution_scores(layout, real, synthetic)[0]["distribution_scores"]["c"]["value"] == 1.0


def test_plots_hide_extremes_and_rare_categories(heart):
    table, schema = heart
    layout, (a, b) = encode(schema, table, table)
    _, figures = distribution_scores(layout, a, b, suppress_below=10)
    chol = a.numeric[:, layout.numeric.index("chol")]
    edges = np.array(figures["chol"]["edges"])
    # Every edge is on a public grid (a multiple of a nice step), never a real value read off the data...
    step = edges[1] - edges[0]
    assert step in (5.0, 10.0, 20.0, 25.0) and np.allclose(edges / step, np.round(edges / step))
    assert np.allclose(np.diff(edges), step)
    # ... and the end bins, which hold the folded tails, each hold at least 10 real values.
    chol = chol[~np.isnan(chol)]
    assert (chol < edges[1]).sum() >= 10 and (chol >= edges[-2]).sum() >= 10
    assert edges[-1] < chol.max()  # the outliers are folded in, not drawn
    site = figures["site"]
    counts = dict(zip(*np.unique(a.codes[:, layout.categorical.index("site")], return_counts=True)))
    assert site["categories"][-1] == OTHER_LABEL
    assert all(counts[layout.levels[layout.categorical.index("site")].index(name) + 1] >= 10
               for name in site["categories"][:-1])


def test_small_counts_are_counted_in_patients_when_known():
    # 60 patients with one row each, and one patient with 40 rows of a value nobody else has.
    values = np.concatenate([np.linspace(50, 60, 60), np.full(40, 200.0)])
    patients = np.concatenate([np.arange(60), np.full(40, 60)])
    layout = Layout(numeric=("lab",), categorical=("ward",), levels=(("common", "private"),))
    codes = np.concatenate([np.ones(60), np.full(40, 2)]).astype(np.int32)[:, None]
    real = Encoded(values[:, None], codes)
    by_rows = distribution_scores(layout, real, real, suppress_below=10)[1]
    by_patients = distribution_scores(layout, real, real, suppress_below=10, patients=patients)[1]
    assert "private" in by_rows["ward"]["categories"]  # 40 rows: shown when counting rows...
    assert "private" not in by_patients["ward"]["categories"]  # ... but they are one patient
    assert by_rows["lab"]["edges"][-2] <= 200.0 < by_rows["lab"]["edges"][-1]  # 200 has a bin of its own...
    assert by_patients["lab"]["edges"][-1] < 200.0  # ... but the axis stops before that one patient's value
