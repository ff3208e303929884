"""Tests for synth.evaluation.gower: agreement with the `gower` package, missing values, blocks."""

from __future__ import annotations

import gower
import numpy as np
import polars as pl
import pytest

from synth.config import parse_config
from synth.evaluation.encoding import Encoded, encode
from synth.evaluation.gower import GowerScale, as_gower_package_frame, gower_matrix, nearest
from synth.schema import infer_schema
from tests.conftest import DIABETES_CSV

DIABETES = str(DIABETES_CSV)


@pytest.fixture(scope="module")
def diabetes() -> tuple:
    table = pl.read_csv(DIABETES, null_values=["?"], n_rows=1_500, infer_schema_length=None).to_arrow()
    schema = infer_schema(table, parse_config({}))
    return table, schema


def test_matches_gower_package_on_real_data(diabetes):
    table, schema = diabetes
    query, reference = table.slice(0, 200), table.slice(200, 700)
    expected = gower.gower_matrix(as_gower_package_frame(query, schema), as_gower_package_frame(reference, schema))
    _, (q, r) = encode(schema, query, reference)
    scale = GowerScale.fit(q, r)
    assert np.abs(gower_matrix(q, r, scale) - expected).max() < 1e-6
    distances, indices = nearest(q, r, scale, k=2, query_block=64, reference_block=128)
    assert np.abs(distances - np.sort(expected, axis=1)[:, :2]).max() < 1e-6
    assert np.allclose(expected[np.arange(len(q)), indices[:, 0]], distances[:, 0], atol=1e-6)


def test_identical_rows_are_at_distance_zero_and_nearest(diabetes):
    table, schema = diabetes
    _, (q, r) = encode(schema, table.slice(0, 50), table.slice(0, 300))
    distances, indices = nearest(q, r, GowerScale.fit(q, r), k=1)
    assert np.all(distances[:, 0] == 0)
    # Each query row's own copy is at distance 0 (duplicates aside, it is the one found).
    assert np.all(gower_matrix(q, r)[np.arange(50), indices[:, 0]] == 0)


def test_hand_computed_distance():
    # Two numbers (ranges 10 and 4) and two categories: |2-7|/10 + |1-1|/4 + 1 + 0 = 1.5, over p = 4.
    q = Encoded(np.array([[2.0, 1.0]]), np.array([[1, 2]], dtype=np.int32))
    r = Encoded(np.array([[7.0, 1.0], [12.0, 5.0]]), np.array([[2, 2], [1, 2]], dtype=np.int32))
    scale = GowerScale.fit(q, r)
    assert scale.range.tolist() == [10.0, 4.0]
    assert gower_matrix(q, r, scale)[0].tolist() == pytest.approx([1.5 / 4, (1.0 + 1.0) / 4])


def test_missing_numbers_both_missing_match_one_missing_is_maximal():
    q = Encoded(np.array([[np.nan], [np.nan], [3.0]]), np.zeros((3, 0), dtype=np.int32))
    r = Encoded(np.array([[np.nan], [5.0]]), np.zeros((2, 0), dtype=np.int32))
    matrix = gower_matrix(q, r, GowerScale.fit(q, r))
    assert matrix.tolist() == [[0.0, 1.0], [0.0, 1.0], [1.0, 1.0]]


def test_missing_category_is_a_category_of_its_own():
    q = Encoded(np.zeros((2, 0)), np.array([[0], [1]], dtype=np.int32))
    r = Encoded(np.zeros((2, 0)), np.array([[0], [2]], dtype=np.int32))
    assert gower_matrix(q, r).tolist() == [[0.0, 1.0], [1.0, 1.0]]


def test_constant_column_contributes_nothing():
    q = Encoded(np.array([[4.0, 1.0]]), np.zeros((1, 0), dtype=np.int32))
    r = Encoded(np.array([[4.0, 3.0]]), np.zeros((1, 0), dtype=np.int32))
    assert gower_matrix(q, r)[0, 0] == pytest.approx(0.5)  # (0 + 1) / 2


def test_blocks_do_not_change_the_answer(diabetes):
    table, schema = diabetes
    _, (q, r) = encode(schema, table.slice(0, 300), table.slice(300, 1_200))
    scale = GowerScale.fit(q, r)
    whole = nearest(q, r, scale, k=3)[0]
    tiny = nearest(q, r, scale, k=3, query_block=7, reference_block=13)[0]
    assert np.array_equal(whole, tiny)


def test_worker_processes_give_the_same_answer_as_one(diabetes):
    table, schema = diabetes
    _, (q, r) = encode(schema, table.slice(0, 500), table.slice(500, 1_500))
    scale = GowerScale.fit(q, r)
    alone = nearest(q, r, scale, k=2, query_block=64, reference_block=256)
    for workers in (2, 3):  # 8 query blocks: runs of 2 and 3 blocks, the last one short
        shared = nearest(q, r, scale, k=2, query_block=64, reference_block=256, workers=workers)
        assert np.array_equal(alone[0], shared[0]) and np.array_equal(alone[1], shared[1])


def test_fewer_reference_rows_than_k():
    q = Encoded(np.array([[0.0]]), np.zeros((1, 0), dtype=np.int32))
    r = Encoded(np.array([[1.0]]), np.zeros((1, 0), dtype=np.int32))
    distances, indices = nearest(q, r, GowerScale.fit(q, r), k=2)
    assert distances[0, 0] == 1.0 and np.isinf(distances[0, 1]) and indices[0, 1] == -1


def test_values_beyond_the_real_range_count_as_at_its_end():
    # Range 0..10 from the real rows; a synthetic 1000 is 1 (not 99) from 0 and 0 from 10.
    real = Encoded(np.array([[0.0], [10.0]]), np.zeros((2, 0), dtype=np.int32))
    synthetic = Encoded(np.array([[1_000.0], [5.0]]), np.zeros((2, 0), dtype=np.int32))
    matrix = gower_matrix(synthetic, real, GowerScale.fit(real))
    assert matrix.tolist() == [[1.0, 0.0], [0.5, 0.5]]
