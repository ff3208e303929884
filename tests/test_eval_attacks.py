"""Tests for synth.evaluation.membership and .attribute: copies are caught, fresh data are not."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from synth.config import parse_config
from synth.evaluation.attribute import attribute_inference
from synth.evaluation.encoding import Encoded, Layout, encode
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


def _column(values) -> Encoded:
    """One numeric column, no categories."""
    values = np.asarray(values, dtype=np.float64)
    return Encoded(values[:, None], np.zeros((len(values), 0), dtype=np.int32))


def test_distance_attack_known_auc():
    # 100 training rows: 75 at 0..74 are copied into the synthetic data, 25 at 200..224 are not.
    # 200 holdout rows at 100..150, all nearer the synthetic rows than the 25 uncopied members and
    # farther than the 75 copied ones: every copied member beats every non-member, every uncopied
    # one loses, so AUC = 75 / 100 = 0.75 exactly, whichever holdout half the attack draws.
    train = _column(np.r_[np.arange(75.0), np.arange(200.0, 225.0)])
    holdout = _column(np.linspace(100, 150, 200))
    synthetic = _column(np.arange(75.0))
    result = membership_inference(train, holdout, synthetic, rows=1_000, reference_rows=1_000,
                                  rng=np.random.default_rng(0))
    assert result["membership_inference"]["distance_auc"] == pytest.approx(0.75)
    assert result["membership_inference"]["members"] == result["membership_inference"]["non_members"] == 100
    # Synthetic rows that copy the holdout instead: the AUC is 0, which tells as much as 1.
    leaked = membership_inference(train, holdout, holdout, rows=1_000, reference_rows=1_000,
                                  rng=np.random.default_rng(0))
    assert leaked["membership_inference"]["distance_auc"] == 0.0 and leaked["mia_auc"] == 1.0


def test_patient_level_attack_averages_a_patients_rows():
    # 50 training patients with two rows each: one copied into the synthetic data (distance 0), one far
    # from it (distance 150-160). 50 holdout patients with two rows at distance 100-110. Row by row,
    # copied rows beat every non-member row and far rows lose to all: AUC 0.5. Patient by patient, a
    # member's mean distance (75-80) is below every non-member's (100-110): AUC 1.
    member_patients = np.repeat(np.arange(50), 2)
    copied, far = np.arange(50.0), 199 + np.arange(50) / 5
    train = _column(np.column_stack([copied, far]).ravel())
    holdout_patients = np.repeat(np.arange(50), 2)
    holdout = _column(149 + np.arange(100) / 10)
    synthetic = _column(copied)
    result = membership_inference(train, holdout, synthetic, rows=1_000, reference_rows=1_000,
                                  rng=np.random.default_rng(0), holdout_patients=holdout_patients,
                                  train_patients=member_patients)
    found = result["membership_inference"]
    assert found["unit"] == "patient" and found["member_patients"] == found["non_member_patients"] == 25
    assert found["distance_auc"] == pytest.approx(0.5)
    assert found["patient_distance_auc"] == 1.0
    assert result["mia_auc"] == 1.0


def test_attribute_inference_known_accuracies():
    # Quasi-identifier x, sensitive category s. The synthetic rows are the training rows, so a member's
    # nearest synthetic row is itself (accuracy 1). Holdout rows share the x values but all have s = "a":
    # the guess (the training row's s, "a" for even x, "b" for odd) is right for half of them.
    layout = Layout(numeric=("x",), categorical=("s",), levels=(("a", "b"),))
    x = np.arange(100.0)[:, None]
    train = Encoded(x, (np.arange(100) % 2 + 1).astype(np.int32)[:, None])
    holdout = Encoded(x.copy(), np.ones((100, 1), dtype=np.int32))
    found = attribute_inference(layout, ["s"], train, holdout, train, 1_000, 1_000, np.random.default_rng(0))
    column = found["attribute_disclosure"]["columns"]["s"]
    assert column["member_accuracy"] == 1.0 and column["holdout_accuracy"] == 0.5
    assert column["advantage"] == 0.5 and column["baseline_accuracy"] == 0.5  # "a" (the first of two tied)
    # By patient: holdout patient 0 holds the 50 even rows (all guessed right), patient 1 one odd row (wrong),
    # the rest are left out. Per row that is 50/51 right; per patient (1 + 0) / 2.
    keep = np.r_[np.arange(0, 100, 2), 1]
    one_sided = holdout.take(keep)
    patients = np.r_[np.zeros(50, np.int64), 1]
    by_patient = attribute_inference(layout, ["s"], train, one_sided, train, 1_000, 1_000, np.random.default_rng(0),
                                     train_patients=np.arange(100), holdout_patients=patients)
    column = by_patient["attribute_disclosure"]["columns"]["s"]
    assert column["holdout_accuracy"] == 0.5 and by_patient["attribute_disclosure"]["unit"] == "patient"


def test_the_attacks_give_the_same_numbers_in_worker_processes(data):
    """evaluation.workers shares the attacks' nearest-neighbour searches (2,000 membership
    targets, 1,500 members and 1,500 non-members for the attribute attack: two query blocks
    each, over two processes) without changing a number."""
    layout, train, holdout, fresh = data
    membership = [membership_inference(train, holdout, fresh, rows=1_500, reference_rows=2_000,
                                       rng=np.random.default_rng(1), workers=w) for w in (1, 2)]
    assert membership[0] == membership[1]
    assert membership[0]["membership_inference"]["members"] == 1_000  # half the holdout: the other half is the population
    sensitive = ["A1Cresult", "num_medications"]
    attribute = [attribute_inference(layout, sensitive, train, holdout, train, 1_500, 2_000, np.random.default_rng(2),
                                     workers=w) for w in (1, 2)]
    assert attribute[0] == attribute[1]
    assert attribute[0]["attribute_disclosure"]["columns"]["A1Cresult"]["member_accuracy"] == 1.0
