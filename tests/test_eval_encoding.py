"""Tests for synth.evaluation.encoding: shared category codes, missing values, datetimes."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from synth.config import parse_config
from synth.evaluation.encoding import MISSING, encode
from synth.schema import infer_schema


def test_codes_are_shared_across_tables_and_missing_is_zero():
    real = pa.table({"c": ["a", "b", None], "x": [1, None, 3]})
    synthetic = pa.table({"c": ["b", "z", "a"], "x": [2, 2, 2]})
    schema = infer_schema(real, parse_config({"columns": {"c": "categorical", "x": "numerical"}}))
    layout, (r, s) = encode(schema, real, synthetic)
    names = {code: name for code, name in enumerate(("(missing)", *layout.levels[0]))}
    assert [names[c] for c in r.codes[:, 0]] == ["a", "b", "(missing)"]
    assert [names[c] for c in s.codes[:, 0]] == ["b", "z", "a"]  # a synthetic-only category gets a code too
    assert r.codes[2, 0] == MISSING
    assert np.isnan(r.numeric[1, 0]) and r.numeric[0, 0] == 1.0


def test_datetimes_become_seconds_even_far_out_of_range():
    moments = [dt.datetime(1970, 1, 2), None, dt.datetime(2262, 4, 11)]  # a generator's wild timestamp
    table = pa.table({"t": pa.array(moments, type=pa.timestamp("ns")), "k": ["a", "b", "a"]})
    schema = infer_schema(table, parse_config({}))
    layout, (encoded,) = encode(schema, table)
    assert layout.datetimes == frozenset({"t"})
    assert encoded.numeric[0, 0] == 86_400.0
    assert np.isnan(encoded.numeric[1, 0])
    assert encoded.numeric[2, 0] > 9.2e9


def test_identifiers_are_left_out():
    table = pa.table({"patient_id": [f"p{i}" for i in range(200)], "x": np.arange(200.0)})
    schema = infer_schema(table, parse_config({"columns": {"patient_id": "identifier"}}))
    layout, _ = encode(schema, table)
    assert layout.columns == ["x"]
