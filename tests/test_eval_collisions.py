"""Tests for synth.evaluation.collisions: exact copies of real rows, on the full data."""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from synth.config import parse_config
from synth.evaluation.collisions import exact_collisions
from synth.schema import infer_schema
from tests.conftest import PIMA_CSV

PIMA = str(PIMA_CSV)


def test_a_copied_row_is_found_and_near_misses_are_not():
    real = pl.read_csv(PIMA).to_arrow()
    schema = infer_schema(real, parse_config({}))
    copied = real.slice(5, 1)
    changed = pl.from_arrow(real.slice(6, 1)).with_columns(pl.col("BMI") + 0.1).to_arrow()
    synthetic = pa.concat_tables([copied, changed.cast(real.schema)])
    result = exact_collisions(real, synthetic, schema)
    assert result == {"exact_collisions": 1, "exact_collision_rate": 0.5}


def test_identical_tables_copy_every_row_and_nulls_match_nulls():
    table = pa.table({"id": ["a", "b", "c"], "x": [1.0, None, 2.0000000000001], "c": ["u", None, "v"]})
    schema = infer_schema(table, parse_config({"columns": {"id": "identifier", "c": "categorical"}}))
    # The id differs (ids are fresh) and 2.0000000000001 rounds to 2.0 at 9 decimals: all three are copies.
    synthetic = pa.table({"id": ["x", "y", "z"], "x": [1.0, None, 2.0], "c": ["u", None, "v"]})
    assert exact_collisions(table, synthetic, schema)["exact_collisions"] == 3
