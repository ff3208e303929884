"""Tests for synth.evaluation.evaluate: the whole set of checks on a small real table."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from synth.config import EvaluationOptions, parse_config
from synth.errors import ConfigError, SchemaError
from synth.evaluation import evaluate
from synth.holdout import split_holdout
from synth.schema import infer_schema
from tests.conftest import DIABETES_CSV

DIABETES = str(DIABETES_CSV)
# A third of the columns: SDMetrics' pair trends grow with the square of the column count.
COLUMNS = [
    "encounter_id", "patient_nbr", "race", "gender", "age", "admission_type_id", "time_in_hospital",
    "medical_specialty", "num_lab_procedures", "num_medications", "number_inpatient", "diag_1", "A1Cresult",
    "insulin", "diabetesMed", "readmitted",
]
REQUIRED = [
    "rows", "columns", "quality_score", "column_shapes", "column_pair_trends", "exact_collisions", "dcr_median",
    "dcr_holdout_median", "nndr_median", "pmse", "pmse_ratio", "voas_williamson", "correlation_similarity", "tstr",
    "trtr", "mia_auc", "attribute_disclosure", "fairness", "gate", "timings",
]
SMALL = {"sample_rows": 1_500, "distance_rows": 500, "propensity_rows": 1_000, "attack_rows": 300,
         "attack_reference_rows": 1_500, "utility_rows": 1_500}


@pytest.fixture(scope="module")
def data():
    table = pl.read_csv(DIABETES, null_values=["?"], n_rows=3_000, infer_schema_length=None, columns=COLUMNS).to_arrow()
    config = parse_config({"evaluation": {"target": "readmitted", "sensitive": ["A1Cresult"],
                                          "protected": ["gender"], **SMALL}})
    schema = infer_schema(table, config)
    train, holdout = split_holdout(table, schema, 0.3, seed=0)
    return train, holdout, schema, config


def test_copied_training_rows_fail_the_gate_with_every_metric(data):
    train, holdout, schema, config = data
    metrics = evaluate(train, train, schema, config.evaluation, seed=0, holdout=holdout, gate=config.gate)
    assert all(key in metrics for key in REQUIRED)
    assert metrics["exact_collisions"] == train.num_rows
    assert metrics["gate"]["verdict"] == "fail"
    assert {c["name"] for c in metrics["gate"]["checks"] if not c["passed"]} >= {"exact_copies", "closeness"}
    assert metrics["holdout_source"].startswith("given")
    assert metrics["evaluation_sample_rows"] == {"real": 1_500, "synthetic": 1_500}


def test_unseen_real_rows_pass_the_privacy_checks(data):
    train, holdout, schema, config = data
    # Stand-in "synthetic" data: real patients the training rows never included.
    fresh, baseline = split_holdout(holdout, schema, 0.5, seed=1)
    metrics = evaluate(train, fresh, schema, config.evaluation, seed=0, holdout=baseline, gate=config.gate)
    checks = {c["name"]: c["passed"] for c in metrics["gate"]["checks"]}
    assert checks["exact_copies"] and checks["closeness"] and checks["membership_inference"]
    assert metrics["mia_auc"] < 0.6


def test_without_a_holdout_a_split_stands_in_and_says_so(data):
    train, _, schema, config = data
    metrics = evaluate(train, train.slice(0, 500), schema, config.evaluation, seed=0)
    assert "seeded 20% split" in metrics["holdout_source"]
    assert metrics["holdout_rows"] > 0


def test_unknown_or_identifier_columns_in_the_settings_are_named(data):
    train, holdout, schema, _ = data
    with pytest.raises(ConfigError, match="evaluation.target: no column 'readmit'"):
        evaluate(train, train, schema, EvaluationOptions(target="readmit"), holdout=holdout)
    with pytest.raises(ConfigError, match="evaluation.sensitive: 'encounter_id' is an identifier"):
        evaluate(train, train, schema, EvaluationOptions(sensitive=["encounter_id"]), holdout=holdout)


def test_synthetic_tables_must_have_the_columns(data):
    train, holdout, schema, config = data
    with pytest.raises(SchemaError, match=r"synthetic table lacks columns \['race'\]"):
        evaluate(train, train.drop(["race"]), schema, config.evaluation, holdout=holdout)
    as_text = train.set_column(train.schema.get_field_index("time_in_hospital"), "time_in_hospital",
                               pa.array(["x"] * train.num_rows))
    with pytest.raises(SchemaError, match="'time_in_hospital' holds string values"):
        evaluate(train, as_text, schema, config.evaluation, holdout=holdout)


def test_same_seed_same_numbers(data):
    train, holdout, schema, config = data
    small = config.evaluation.model_copy(update={"target": None, "sensitive": [], "protected": []})
    first = evaluate(train, train.slice(0, 800), schema, small, seed=4, holdout=holdout)
    second = evaluate(train, train.slice(0, 800), schema, small, seed=4, holdout=holdout)
    for key in ("dcr_median", "pmse", "mia_auc", "correlation_similarity"):
        assert first[key] == second[key]
    assert np.isfinite(first["pmse_ratio"])
