"""Schema inference, config overrides, and the errors a wrong config gives."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from synth.config import ColumnKind, load_config, parse_config
from synth.errors import ConfigError, SchemaError
from synth.schema import Schema, infer_schema


def _table(n: int = 2_000) -> pa.Table:
    return pa.table(
        {
            "patient_id": pa.array([f"P{i // 3}" for i in range(n)]),
            "encounter_id": pa.array(range(n), pa.int64()),
            "age": pa.array([20 + i % 70 for i in range(n)], pa.int64()),
            "weight": pa.array([60.5 + (i % 40) / 3 for i in range(n)], pa.float64()),
            "admission_type_id": pa.array([1 + i % 8 for i in range(n)], pa.int64()),
            "sex": pa.array(["F" if i % 2 else "M" for i in range(n)]),
            "smoker": pa.array([None if i % 10 == 0 else i % 3 == 0 for i in range(n)], pa.bool_()),
            "admitted": pa.array([dt.datetime(2020, 1, 1) + dt.timedelta(hours=i) for i in range(n)]),
        }
    )


def test_inference_gives_each_column_its_kind():
    schema = infer_schema(_table())
    kinds = {c.name: c.kind for c in schema.columns}
    assert kinds == {
        "patient_id": ColumnKind.IDENTIFIER,
        "encounter_id": ColumnKind.IDENTIFIER,
        "age": ColumnKind.NUMERICAL,
        "weight": ColumnKind.NUMERICAL,
        "admission_type_id": ColumnKind.CATEGORICAL,
        "sex": ColumnKind.CATEGORICAL,
        "smoker": ColumnKind.BOOLEAN,
        "admitted": ColumnKind.DATETIME,
    }
    # The repeated identifier is the patient; the unique one is not.
    assert schema.entity_key == "patient_id"


def test_config_overrides_kinds_drops_columns_and_names_the_key():
    config = parse_config(
        {"columns": {"age": "categorical", "weight": {"kind": "numerical"}}, "drop": ["smoker"], "entity_key": "patient_id"}
    )
    schema = infer_schema(_table(), config)
    assert schema["age"].kind is ColumnKind.CATEGORICAL
    assert "smoker" not in schema.names and schema.dropped == ("smoker",)
    assert schema.entity_key == "patient_id"


def test_schema_round_trips_through_json_with_exact_arrow_types():
    schema = infer_schema(_table())
    again = Schema.from_json(schema.to_json())
    assert again == schema
    assert again.arrow_schema() == _table().schema


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"columns": {"agee": "numerical"}}, "columns.agee: no such column"),
        ({"drop": ["nope"]}, "drop.nope: no such column"),
        ({"entity_key": "pid"}, "entity_key: no column 'pid'"),
        ({"columns": {"sex": "numerical"}}, "column 'sex': declared numerical"),
        ({"columns": {"sex": "datetime"}}, "column 'sex': declared datetime"),
        ({"columns": {"age": "boolean"}}, "column 'age': declared boolean but holds 70 distinct values"),
    ],
)
def test_a_wrong_config_names_the_column_and_the_problem(config, message):
    with pytest.raises(ConfigError, match=message):
        infer_schema(_table(), parse_config(config))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"columns": {"age": "number"}}, r"columns\.age\.kind: Input should be"),
        ({"model": {"epochs": 0}}, r"model\.epochs: Input should be greater than or equal to 1"),
        ({"modle": {}}, r"modle: unknown setting"),
        ({"columns": {"age": "numerical"}, "drop": ["age"]}, "both dropped and given a kind"),
    ],
)
def test_config_validation_errors_are_readable(config, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(config)


def test_yaml_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("columns: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(listed)


def test_empty_and_all_identifier_tables_are_refused():
    with pytest.raises(SchemaError, match="no rows"):
        infer_schema(_table().slice(0, 0))
    with pytest.raises(SchemaError, match="nothing to model"):
        infer_schema(_table().select(["patient_id", "encounter_id"]))


def test_overrides_replace_section_fields_and_top_level_settings():
    config = parse_config({"model": {"epochs": 7, "batch_size": 64}})
    changed = config.with_overrides(model={"epochs": 3, "latent_dim": None}, seed=11, privacy={"epsilon": None})
    assert changed.model.epochs == 3 and changed.model.batch_size == 64 and changed.model.latent_dim == 32
    assert changed.seed == 11 and changed.privacy.epsilon is None
    with pytest.raises(ConfigError, match="model.epochs"):
        config.with_overrides(model={"epochs": 0})
