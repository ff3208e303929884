"""RDT transforms: exact round trips per column kind, the real domain only, seeded draws, safe persistence."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from synth import safe_state
from synth.config import TransformOptions
from synth.errors import ModelError
from synth.frames import to_arrow, to_model_frame
from synth.schema import infer_schema
from synth.transforms import TableTransformer

N = 1_200


def _mixed_table() -> pa.Table:
    rng = np.random.default_rng(7)

    def with_nulls(values, every):
        return [None if i % every == 0 else v for i, v in enumerate(values)]

    base = dt.datetime(2150, 3, 1, 8, 30)
    return pa.table(
        {
            "count": pa.array(with_nulls(rng.poisson(4, N).tolist(), 9), pa.int64()),
            "dose": pa.array(np.round(rng.lognormal(3, 1, N), 3)),
            "lab": pa.array(with_nulls(np.round(rng.normal(5, 2, N), 1).tolist(), 5), pa.float64()),
            "seen_at": pa.array(
                with_nulls([base + dt.timedelta(seconds=int(s)) for s in rng.integers(0, 10**8, N)], 7),
                pa.timestamp("us"),
            ),
            "utc_at": pa.array(
                [base + dt.timedelta(minutes=int(s)) for s in rng.integers(0, 10**6, N)], pa.timestamp("ms", tz="UTC")
            ),
            "born": pa.array([dt.date(1930, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 30_000, N)]),
            "ward": pa.array(with_nulls(rng.choice(["ICU", "CCU", "MED", "SURG"], N).tolist(), 6)),
            "code": pa.array(rng.integers(1, 9, N), pa.int32()),
            "smoker": pa.array(with_nulls(rng.random(N).round().astype(bool).tolist(), 4), pa.bool_()),
        }
    )


@pytest.fixture(scope="module")
def fitted():
    table = _mixed_table()
    schema = infer_schema(table)
    frame = to_model_frame(table, schema)
    return table, schema, frame, TableTransformer(TransformOptions(), seed=3).fit(frame, schema)


def test_every_column_kind_round_trips_exactly_with_nulls(fitted):
    table, schema, frame, transformer = fitted
    kinds = {c.name: c.kind.value for c in schema.columns}
    assert set(kinds.values()) == {"numerical", "datetime", "categorical", "boolean"}
    matrix = transformer.transform(frame, np.random.default_rng(0))
    restored = to_arrow(transformer.reverse_transform(matrix), schema)
    assert restored.schema == table.schema  # ints stay ints, dates stay dates, zones and units kept
    for name in table.column_names:
        assert restored[name].equals(table[name]), name
        assert restored[name].null_count == table[name].null_count, name


def test_text_reversed_as_arrow_gives_the_same_arrow_table_as_object_arrays(fitted):
    table, schema, frame, transformer = fitted
    matrix = transformer.transform(frame, np.random.default_rng(0))
    noise = matrix + np.random.default_rng(1).normal(0, 3, matrix.shape)  # labels out of range and rounded too
    for m in (matrix, noise):
        arrow = transformer.reverse_transform(m, arrow_text=True)
        assert any(isinstance(arrow[c].dtype, pd.ArrowDtype) for c in arrow)  # the Arrow path was taken
        assert to_arrow(arrow, schema).equals(to_arrow(transformer.reverse_transform(m), schema))


def test_segments_describe_the_matrix(fitted):
    _, _, frame, transformer = fitted
    matrix = transformer.transform(frame)
    assert matrix.shape == (N, len(transformer.segments_))
    for i, segment in enumerate(transformer.segments_):
        if segment.kind == "discrete":
            labels = matrix[:, i]
            assert np.all(labels == np.round(labels)) and labels.min() >= 0 and labels.max() < segment.classes
    names = [s.name for s in transformer.segments_]
    assert {"count.is_null", "lab.is_null", "seen_at.is_null", "ward", "smoker"} <= set(names)
    assert "dose.is_null" not in names  # no nulls in the data, no indicator


def test_any_matrix_reverses_into_the_real_domain(fitted):
    table, schema, _, transformer = fitted
    rng = np.random.default_rng(1)
    noise = np.empty((5_000, len(transformer.segments_)))
    for i, segment in enumerate(transformer.segments_):
        if segment.kind == "discrete":
            noise[:, i] = rng.integers(0, segment.classes, len(noise))
        else:
            noise[:, i] = rng.normal(0, 3, len(noise))  # far outside the modes
    out = to_arrow(transformer.reverse_transform(noise), schema)
    for name in ("ward", "code", "smoker"):
        assert set(out[name].drop_null().to_pylist()) <= set(table[name].drop_null().to_pylist())
    for name in ("count", "dose", "lab", "seen_at", "born"):
        real = table[name].drop_null()
        values = out[name].drop_null()
        assert min(values.to_pylist()) >= min(real.to_pylist()) and max(values.to_pylist()) <= max(real.to_pylist())


def test_generated_instants_finer_than_the_column_unit_are_floored_to_it(fitted):
    """A DP domain's sample is drawn in nanoseconds; the extract stores microseconds (or ms)."""
    _, schema, frame, _ = fitted
    frame = frame.copy()
    frame["seen_at"] = frame["seen_at"] + pd.Timedelta(nanoseconds=999)
    frame["utc_at"] = frame["utc_at"] + pd.Timedelta(microseconds=1_500)
    out = to_arrow(frame, schema)
    assert out.schema == schema.arrow_schema()
    assert out["seen_at"].to_pylist() == to_arrow(frame.assign(seen_at=frame["seen_at"].dt.floor("us")), schema)[
        "seen_at"
    ].to_pylist()
    assert all(v.microsecond % 1000 == 0 for v in out["utc_at"].drop_null().to_pylist())


def test_component_draws_are_seeded_and_vectorised(fitted):
    _, _, frame, transformer = fitted
    a = transformer.transform(frame, np.random.default_rng(5))
    b = transformer.transform(frame, np.random.default_rng(5))
    c = transformer.transform(frame, np.random.default_rng(6))
    assert np.array_equal(a, b, equal_nan=True)
    assert not np.array_equal(a, c, equal_nan=True)
    state = np.random.get_state()[1].copy()
    transformer.transform(frame, np.random.default_rng(5))
    assert np.array_equal(np.random.get_state()[1], state)  # NumPy's global state untouched


def test_fit_on_a_bounded_sample_keeps_every_category_and_the_full_range(fitted):
    table, schema, frame, _ = fitted
    small = TableTransformer(TransformOptions(fit_sample_rows=100), seed=0).fit(frame, schema)
    restored = to_arrow(small.reverse_transform(small.transform(frame)), schema)
    for name in table.column_names:
        assert restored[name].equals(table[name]), name


def test_saved_state_loads_without_pickle_and_transforms_identically(fitted, tmp_path):
    _, _, frame, transformer = fitted
    transformer.save(tmp_path)
    assert not any(p.suffix in (".pkl", ".pickle") for p in tmp_path.iterdir())
    again = TableTransformer.load(tmp_path)
    assert again.segments_ == transformer.segments_
    assert np.array_equal(
        again.transform(frame, np.random.default_rng(2)), transformer.transform(frame, np.random.default_rng(2)), equal_nan=True
    )


def test_loading_refuses_classes_outside_the_allow_list(fitted, tmp_path):
    _, _, _, transformer = fitted
    text, arrays = safe_state.dumps(transformer.hyper_)
    tampered = json.loads(text)
    tampered["__object__"] = "os.system"
    with pytest.raises(ModelError, match="refusing to load os.system"):
        safe_state.loads(json.dumps(tampered), arrays)
    with pytest.raises(TypeError, match="cannot save an object"):
        safe_state.dumps(object())
