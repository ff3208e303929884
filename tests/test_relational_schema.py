"""The relational config, its validation errors, the tree's order and key inference."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import yaml

from synth.errors import ConfigError
from synth.relational.schema import RelationalSchema, infer_keys, parse_relational


def _schema(tables: dict, data: dict | None = None) -> RelationalSchema:
    return RelationalSchema.from_config(parse_relational({"tables": tables}), data)


ISSUE_YAML = """
tables:
  patients: {source: patients.csv, primary_key: id}
  labs: {source: labs.csv, foreign_keys: {id: patients.id}}
"""


def test_the_issue_shape_parses_into_a_two_table_tree():
    config = parse_relational(yaml.safe_load(ISSUE_YAML))
    assert config.tables["labs"].source == "labs.csv"
    schema = RelationalSchema.from_config(config)
    assert schema.order == ("patients", "labs")
    assert schema.root == "patients"
    assert [str(r) for r in schema.children("patients")] == ["labs.id -> patients.id"]
    assert schema.key_columns("labs") == ["id"]


def test_tree_order_puts_parents_first_and_keeps_the_config_order_among_siblings():
    schema = _schema({
        "labs": {"primary_key": "lab_id", "foreign_keys": {"visit_id": "visits.visit_id"}},
        "notes": {"foreign_keys": {"patient_id": "patients.patient_id"}},
        "visits": {"primary_key": "visit_id", "foreign_keys": {"patient_id": "patients.patient_id"}},
        "patients": {"primary_key": "patient_id"},
    })
    assert schema.order == ("patients", "notes", "visits", "labs")
    assert [r.child for r in schema.children("patients")] == ["notes", "visits"]
    assert schema.parent_relation("labs").parent == "visits"
    assert schema.parent_relation("patients") is None
    assert schema.key_columns("labs") == ["lab_id", "visit_id"]


def test_a_grandparents_key_is_a_shortcut_not_a_second_parent():
    schema = _schema({
        "patients": {"primary_key": "pid"},
        "visits": {"primary_key": "vid", "foreign_keys": {"pid": "patients.pid"}},
        "labs": {"foreign_keys": {"pid": "patients.pid", "vid": "visits.vid"}},
    })
    assert str(schema.parent_relation("labs")) == "labs.vid -> visits.vid"
    assert [str(r) for r in schema.shortcuts] == ["labs.pid -> patients.pid"]
    assert schema.key_columns("labs") == ["vid", "pid"]
    assert [r.parent for r in schema.chain("labs", "patients")] == ["visits", "patients"]


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ({"a": {"primary_key": "id"}, "b": {"foreign_keys": {"id": "c.id"}}}, "no table named 'c'"),
        (
            {"a": {"primary_key": "id"}, "b": {"foreign_keys": {"a_id": "a.code"}}},
            "must point at 'a''s primary key ('id')",
        ),
        (
            {"a": {"primary_key": "id"}, "b": {"primary_key": "id"}, "c": {"foreign_keys": {"x": "a.id", "y": "b.id"}}},
            "a table with two parents is not supported",
        ),
        (
            {
                "a": {"primary_key": "id", "foreign_keys": {"b_id": "b.id"}},
                "b": {"primary_key": "id", "foreign_keys": {"a_id": "a.id"}},
            },
            "the foreign keys form a cycle",
        ),
        ({"a": {"primary_key": "id"}, "b": {"primary_key": "id"}}, "exactly one root table"),
        (
            {"a": {"primary_key": "id"}, "b": {"foreign_keys": {"x": "a.id", "y": "a.id"}}},
            "a table with two parents is not supported",
        ),
    ],
)
def test_invalid_trees_are_refused_with_a_specific_message(tables, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _schema(tables)


def test_a_foreign_key_must_read_table_dot_column():
    with pytest.raises(ConfigError, match=r"tables.b.foreign_keys: .*'patients' must read 'table.column'"):
        parse_relational({"tables": {"b": {"foreign_keys": {"id": "patients"}}}})


def test_unknown_columns_are_named_with_the_table():
    data = {"a": pa.table({"id": [1, 2]}), "b": pa.table({"a_id": [1, 1]})}
    with pytest.raises(ConfigError, match=r"table 'b' has no column 'id'"):
        _schema({"a": {"primary_key": "id"}, "b": {"foreign_keys": {"id": "a.id"}}}, data)
    with pytest.raises(ConfigError, match=r"tables \['c'\] are configured but were not given"):
        _schema({"a": {"primary_key": "id"}, "c": {}}, data)


def test_keys_are_inferred_from_names_and_values_and_said():
    rng = np.random.default_rng(0)
    patients = pa.table({"id": np.arange(1, 51), "age": rng.integers(20, 90, 50)})
    labs = pa.table({"id": rng.integers(1, 51, 200), "value": rng.normal(size=200)})
    bare = parse_relational({"tables": {"patients": {}, "labs": {}}})
    config, said = infer_keys(bare, {"patients": patients, "labs": labs})
    assert config.tables["patients"].primary_key == "id"
    assert config.tables["labs"].primary_key is None  # labs.id repeats: not a primary key
    assert config.tables["labs"].foreign_keys == {"id": "patients.id"}
    assert said == [
        "patients.id is the primary key of 'patients': its name, and unique non-null values",
        "labs.id -> patients.id is a foreign key: same name, every value found in 'patients'",
    ]
    assert RelationalSchema.from_config(config, {"patients": patients, "labs": labs}).order == ("patients", "labs")


def test_no_foreign_key_is_inferred_when_a_value_has_no_parent():
    patients = pa.table({"id": [1, 2, 3]})
    labs = pa.table({"id": [1, 2, 4]})  # 4 is not a patient
    bare = parse_relational({"tables": {"patients": {}, "labs": {}}})
    config, said = infer_keys(bare, {"patients": patients, "labs": labs})
    assert config.tables["labs"].foreign_keys == {}
    assert config.tables["labs"].primary_key == "id"  # unique and non-null: obvious by the rule
    assert len(said) == 2 and all("primary key" in s for s in said)
