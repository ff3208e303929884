"""Tests for synth.evaluation.membership and .attribute: copies are caught, fresh data are not."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from synth.config import parse_config
from synth.evaluation.attribute import attribute_inference
from synth.evaluation.encoding import encode
from synth.evaluation.membership import membership_inference
from synth.schema import infer_schema
from tests.conftest import DIABETES_CSV, PIMA_CSV, encoded_split

DIABETES = str(DIABETES_CSV)


@pytest.fixture(scope="module")
def data():
    table = pl.read_csv(DIABETES, null_values=["?"], n_rows=6_000, infer_schema_length=None).to_arrow()
    layout, (train, holdout, fresh) = encoded_split(table, 2_000, 4_000)
    return layout, train, holdout, fresh


def test_membership_copied_training_rows_are_exposed(data):
    _, train, holdout, _ = data
    result = membership_inference(train, holdout, train, rows=500, reference_rows=2_000, rng=np.random.default_rng(1))
    assert result["membership_inference"]["distance_auc"] > 0.95
    assert result["mia_auc"] > 0.95
    assert result["membership_inference"]["members"] == 500


def test_membership_fresh_rows_give_chance(data):
    _, train, holdout, fresh = data
    result = membership_inference(train, holdout, fresh, rows=500, reference_rows=2_000, rng=np.random.default_rng(1))
    assert abs(result["membership_inference"]["distance_auc"] - 0.5) < 0.07
    assert abs(result["membership_inference"]["density_auc"] - 0.5) < 0.07


def test_attribute_copied_rows_disclose_members_only(data):
    layout, train, holdout, fresh = data
    sensitive = ["A1Cresult", "num_medications"]
    leak = attribute_inference(layout, sensitive, train, holdout, train, 500, 2_000, np.random.default_rng(2))
    columns = leak["attribute_disclosure"]["columns"]
    assert columns["A1Cresult"]["member_accuracy"] == 1.0
    assert columns["num_medications"]["advantage"] > 0.4
    fair = attribute_inference(layout, sensitive, train, holdout, fresh, 500, 2_000, np.random.default_rng(2))
    assert abs(fair["attribute_disclosure"]["max_advantage"]) < 0.08


def test_attribute_without_sensitive_columns_is_skipped(data):
    layout, train, holdout, _ = data
    result = attribute_inference(layout, [], train, holdout, train, 10, 10, np.random.default_rng(0))
    assert "skipped" in result["attribute_disclosure"]


def test_density_attack_splits_the_holdout_by_patient():
    # Pima rows as patients with 4 near-identical rows each (an event table). Members, non-members
    # and "synthetic" rows are all different patients: an honest attack scores about 0.5.
    table = pl.read_csv(str(PIMA_CSV)).to_arrow()
    schema = infer_schema(table, parse_config({}))
    _, (patients,) = encode(schema, table)
    rows = np.repeat(np.arange(len(patients)), 4)
    events = patients.take(rows)
    events.numeric[:, 0] += np.tile(np.arange(4), len(patients))  # rows of one patient differ a little
    patient_of = rows
    train, holdout, fresh = (np.flatnonzero(patient_of % 3 == k) for k in range(3))
    args = (events.take(train), events.take(holdout), events.take(fresh), 300, 2_000)
    by_patient = membership_inference(*args, np.random.default_rng(0), holdout_patients=patient_of[holdout])
    by_row = membership_inference(*args, np.random.default_rng(0))
    assert abs(by_patient["membership_inference"]["density_auc"] - 0.5) < 0.1
    assert by_row["membership_inference"]["density_auc"] > 0.65  # the artefact the patient split removes
