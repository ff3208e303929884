"""The non-neural synthesizers: the extract's types, seeds, plain model folders, no DP, and known answers."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from synth.config import parse_config
from synth.errors import ConfigError
from synth.frames import to_model_frame
from synth.models import get_synthesizer, load_synthesizer
from synth.schema import infer_schema

BASELINES = ["independent", "gaussian-copula", "pca", "smote"]


def mixed_table(rows: int = 400, seed: int = 0) -> pa.Table:
    """Numbers (two strongly correlated), an integer and a date with nulls, categories with nulls, booleans."""
    rng = np.random.default_rng(seed)
    x = rng.normal(50, 10, rows)
    y = 2 * x + rng.normal(0, 3, rows)  # Pearson r ~ 0.99 with x
    gaps = rng.random(rows) < 0.1
    group = rng.choice(["a", "b", "c"], size=rows, p=[0.5, 0.3, 0.2]).astype(object)
    group[rng.random(rows) < 0.1] = None
    admitted = dt.date(2020, 1, 1) + np.array([dt.timedelta(days=int(d)) for d in rng.integers(0, 700, rows)])
    measured = np.datetime64("2021-01-01T00:00:00", "us") + rng.integers(0, 10**6, rows).astype("timedelta64[s]")
    return pa.table(
        {
            "x": pa.array(x),
            "y": pa.array(y),
            "age": pa.array(rng.integers(18, 90, rows), mask=gaps, type=pa.int32()),
            "group": pa.array(group, type=pa.string()),
            "smoker": pa.array(rng.random(rows) < 0.3),
            "admitted": pa.array(admitted, type=pa.date32()),
            "measured": pa.array(measured, mask=rng.random(rows) < 0.2, type=pa.timestamp("us")),
        }
    )


@pytest.fixture(scope="module")
def mixed():
    table = mixed_table()
    config = parse_config({"seed": 3})
    return table, infer_schema(table, config), config


@pytest.fixture(scope="module")
def fitted(mixed):
    table, schema, config = mixed
    return {name: get_synthesizer(name)(config).fit(table, schema) for name in BASELINES}


@pytest.mark.parametrize("name", BASELINES)
def test_samples_keep_the_extract_schema_types_and_nulls(mixed, fitted, name):
    table, schema, _ = mixed
    assert [c.kind.value for c in schema.modelled] == [
        "numerical", "numerical", "numerical", "categorical", "boolean", "datetime", "datetime"
    ]
    synthetic = fitted[name].sample(2_000, seed=1)
    assert synthetic.schema.equals(table.schema)
    assert synthetic.num_rows == 2_000
    for column in ("age", "group", "measured"):  # 10%, 10% and 20% missing in the real table
        assert 0 < synthetic[column].null_count < 2_000 * 0.5, column
    assert set(pc.unique(synthetic["group"]).to_pylist()) <= {"a", "b", "c", None}
    low, high = pc.min_max(table["admitted"]).values()
    assert pc.all(pc.and_(pc.greater_equal(synthetic["admitted"], low), pc.less_equal(synthetic["admitted"], high))).as_py()


@pytest.mark.parametrize("name", BASELINES)
def test_same_seed_same_rows_other_seed_other_rows_and_the_fit_is_seeded(mixed, fitted, name):
    table, schema, config = mixed
    model = fitted[name]
    assert model.sample(300, seed=9).equals(model.sample(300, seed=9))
    assert not model.sample(300, seed=9).equals(model.sample(300, seed=10))
    refitted = get_synthesizer(name)(config).fit(table, schema)
    assert refitted.sample(300, seed=9).equals(model.sample(300, seed=9))


@pytest.mark.parametrize("name", BASELINES)
def test_saved_folder_holds_plain_files_and_loads_to_the_same_samples(fitted, name, tmp_path):
    model = fitted[name]
    folder = model.save(tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json", "identifiers.json", "model.json", "privacy.json", "schema.json", "segments.json",
        "state.npz", "training.json", "transformer.json", "transformer.npz", "versions.json",
    ]
    assert not any(p.is_symlink() or p.is_dir() for p in folder.iterdir())
    with np.load(folder / "state.npz", allow_pickle=False) as state:  # numbers only: no pickle to run
        assert all(state[key].dtype.kind in "fiub" for key in state.files)
    described = json.loads((folder / "model.json").read_text())
    assert described["name"] == name and described["privacy_note"]
    loaded = load_synthesizer(folder)
    assert type(loaded) is type(model)
    assert loaded.sample(300, seed=4).equals(model.sample(300, seed=4))


@pytest.mark.parametrize("name", BASELINES)
def test_differential_privacy_is_refused_in_one_line(mixed, name):
    table, schema, _ = mixed
    config = parse_config({"seed": 3, "model": {"name": name}, "privacy": {"epsilon": 1.0}})
    with pytest.raises(ConfigError, match=f"^model {name} has no differential privacy; use vae or patient-vae$"):
        get_synthesizer(name)(config).fit(table, schema)


def test_smote_says_plainly_that_it_interpolates_real_records(fitted):
    note = fitted["smote"].privacy_note
    assert "interpolates real records" in note and "stores every training row" in note


def test_independent_category_frequencies_match_the_training_frequencies(mixed, fitted):
    """20,000 draws: a share's standard error is at most 0.0035, so 0.015 is over 4 of them
    (measured: largest difference 0.0022 for group, 0.0023 for smoker; age nulls 0.1073 vs 0.1075)."""
    table, _, _ = mixed
    synthetic = fitted["independent"].sample(20_000, seed=2)
    for column in ("group", "smoker"):
        real = table[column].to_pandas().value_counts(normalize=True, dropna=False)
        made = synthetic[column].to_pandas().value_counts(normalize=True, dropna=False)
        assert set(made.index.fillna("null")) == set(real.index.fillna("null")), column
        assert np.abs(made.reindex(real.index) - real).max() < 0.015, column
    real_nulls, made_nulls = table["age"].null_count / table.num_rows, synthetic["age"].null_count / 20_000
    assert abs(made_nulls - real_nulls) < 0.015


def test_correlation_is_lost_by_independent_marginals_and_kept_by_the_copula(mixed, fitted):
    """Real Pearson r(x, y) is 0.989 on this table; measured on 20,000 synthetic rows (seed 2):
    independent 0.008, copula 0.987, SMOTE 0.991, PCA 1.000 (the kept components explain 95% of
    the variance: the dropped one holds most of y's noise about 2x, so PCA overstates r)."""
    table, _, _ = mixed
    real = np.corrcoef(table["x"].to_numpy(), table["y"].to_numpy())[0, 1]
    assert real > 0.98
    r = {}
    for name in BASELINES:
        synthetic = fitted[name].sample(20_000, seed=2)
        r[name] = np.corrcoef(synthetic["x"].to_numpy(), synthetic["y"].to_numpy())[0, 1]
    assert abs(r["independent"]) < 0.03  # standard error of r at 0 is 1/sqrt(20,000) = 0.007
    assert abs(r["gaussian-copula"] - real) < 0.01
    assert abs(r["pca"] - real) < 0.02 and abs(r["smote"] - real) < 0.01


def test_smote_rows_lie_between_two_training_rows_in_the_transformed_space():
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, 150)
    table = pa.table({"x": x, "y": x + rng.normal(0, 0.5, 150), "z": rng.gamma(2, 3, 150),
                      "kind": rng.choice(["p", "q", "r"], 150)})
    config = parse_config({"seed": 0})
    schema = infer_schema(table, config)
    model = get_synthesizer("smote")(config).fit(table, schema)
    synthetic = model.sample(40, seed=1)
    real = model.transformer_.transform(to_model_frame(table, schema))
    made = model.transformer_.transform(to_model_frame(synthetic, schema))
    numbers = [i for i, s in enumerate(model.transformer_.segments_) if s.kind == "continuous"]
    label = [s.name for s in model.transformer_.segments_].index("kind")
    assert len(numbers) == 3
    a, b = real[:, None, numbers], real[None, :, numbers]  # every ordered pair of training rows
    for row in made:
        step = b - a  # (n, n, 3)
        length = (step**2).sum(axis=-1)
        t = np.where(length > 0, ((row[numbers] - a) * step).sum(axis=-1) / np.where(length > 0, length, 1), 0)
        miss = np.linalg.norm(a + t[..., None] * step - row[numbers], axis=-1)
        miss[(t < -1e-9) | (t > 1 + 1e-9)] = np.inf
        first, second = np.unravel_index(np.argmin(miss), miss.shape)
        assert miss[first, second] < 1e-9
        assert row[label] in (real[first, label], real[second, label])


def test_an_entity_key_is_modelled_by_rows_each_synthetic_row_a_patient(mixed):
    table, _, _ = mixed
    patients = pa.array(np.repeat(np.arange(100), 4).astype(str))
    table = table.append_column("patient_id", patients)
    config = parse_config({"seed": 0, "entity_key": "patient_id", "columns": {"patient_id": "identifier"}})
    schema = infer_schema(table, config)
    synthetic = get_synthesizer("gaussian-copula")(config).fit(table, schema).sample(200, seed=0)
    assert synthetic.schema.equals(table.schema)
    assert pc.count_distinct(synthetic["patient_id"]).as_py() == 200
