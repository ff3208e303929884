"""The release gate attacked with constructed "synthetic" tables whose right verdict is known.

Every synthetic table here is made of real rows, so the truth is known: other real people
(disjoint from the training patients) are what a perfect generator would produce and must
pass; training rows, copied or nudged, must fail. Splits are by patient wherever the
table has an entity key.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from synth.config import parse_config
from synth.errors import SourceError
from synth.evaluation import evaluate
from synth.holdout import split_holdout
from synth.schema import infer_schema
from tests.conftest import DIABETES_CSV, HEART_CSV, PIMA_CSV

# A third of the columns: SDMetrics' pair trends grow with the square of the column count.
COLUMNS = [
    "encounter_id", "patient_nbr", "race", "gender", "age", "admission_type_id", "time_in_hospital",
    "medical_specialty", "num_lab_procedures", "num_medications", "number_inpatient", "diag_1", "A1Cresult",
    "insulin", "diabetesMed", "readmitted",
]
COARSE = ["race", "gender", "age", "admission_type_id", "time_in_hospital", "num_procedures", "A1Cresult", "insulin",
          "diabetesMed", "readmitted"]
SMALL = {"sample_rows": 1_500, "distance_rows": 1_000, "propensity_rows": 1_500, "attack_rows": 500,
         "attack_reference_rows": 3_000, "utility_rows": 1_500}


def _thirds(table: pa.Table, config) -> tuple:
    """(train, holdout, other real people, schema): the table cut in three by patient (or row)."""
    schema = infer_schema(table, config)
    train, rest = split_holdout(table, schema, 0.5, seed=0)
    other, holdout = split_holdout(rest, schema, 0.5, seed=1)
    return train, holdout, other, schema


@pytest.fixture(scope="module")
def diabetes():
    table = pl.read_csv(str(DIABETES_CSV), null_values=["?"], infer_schema_length=None, columns=COLUMNS).to_arrow()
    return _thirds(table, parse_config({"evaluation": SMALL}))


def _failed(metrics: dict) -> set[str]:
    return {c["name"] for c in metrics["gate"]["checks"] if not c["passed"]}


def test_other_real_people_pass_the_gate(diabetes):
    train, holdout, other, schema = diabetes
    assert schema.entity_key == "patient_nbr"
    metrics = evaluate(train, other, schema, parse_config({"evaluation": SMALL}).evaluation, seed=0, holdout=holdout)
    assert metrics["gate"]["verdict"] == "pass", metrics["gate"]["reasons"]
    assert metrics["membership_inference"]["unit"] == "patient"
    assert metrics["mia_auc"] < 0.56  # two-sided, rows and patients: chance, plus the noise of 400 patients a side
    tail = metrics["distance"]
    assert abs(tail["dcr_tail_share"] - tail["dcr_holdout_tail_share"]) < 0.02


def test_near_copies_of_a_fifth_of_the_training_rows_fail_the_gate(diabetes):
    train, holdout, other, schema = diabetes
    rng = np.random.default_rng(0)
    fifth = other.num_rows // 5
    copied = pl.from_arrow(train.take(np.sort(rng.choice(train.num_rows, fifth, replace=False))))
    nudged = copied.with_columns(pl.col("num_lab_procedures") + 1).to_arrow().cast(other.schema)  # one value moved
    near = pa.concat_tables([other.slice(0, other.num_rows - fifth), nudged])
    metrics = evaluate(train, near, schema, parse_config({"evaluation": SMALL}).evaluation, seed=0, holdout=holdout)
    assert "closeness_tail" in _failed(metrics) and metrics["gate"]["verdict"] == "fail"
    # Not one of the nudged rows is an exact copy: the exact-copy check cannot be what caught them.
    assert "exact_copies" not in _failed(metrics)
    from synth.evaluation.collisions import exact_collisions

    assert exact_collisions(train, nudged, schema)["exact_collisions"] == 0
    # About a fifth of the rows moved into the holdout's closest 5%: 0.2 + 0.8 * 0.05 = 0.24.
    assert metrics["distance"]["dcr_tail_share"] == pytest.approx(0.24, abs=0.04)


def test_other_real_people_of_a_small_table_pass_without_an_entity_key():
    table = pl.read_csv(str(HEART_CSV), infer_schema_length=None).to_arrow()
    config = parse_config({"columns": {"site": "categorical", "cp": "categorical"}, "evaluation": SMALL})
    train, holdout, other, schema = _thirds(table, config)
    assert schema.entity_key is None
    metrics = evaluate(train, other, schema, config.evaluation, seed=0, holdout=holdout)
    assert metrics["gate"]["verdict"] == "pass", metrics["gate"]["reasons"]
    assert metrics["membership_inference"]["unit"] == "row"


def test_without_a_holdout_the_gate_cannot_pass_even_for_other_real_people(diabetes):
    train, _, other, schema = diabetes
    metrics = evaluate(train, other, schema, parse_config({"evaluation": SMALL}).evaluation, seed=0)
    assert metrics["gate"]["verdict"] == "fail"
    assert _failed(metrics) == {"holdout", "closeness", "closeness_tail", "membership_inference"}
    assert all("unknown: no unseen real rows" in reason for reason in metrics["gate"]["reasons"])


def test_a_holdout_sharing_patients_with_the_real_table_is_refused(diabetes):
    train, holdout, other, schema = diabetes
    leaky = pa.concat_tables([holdout, train.slice(0, 50)])
    with pytest.raises(SourceError, match=r"the holdout shares \d+ patients \(entity key 'patient_nbr'\)"):
        evaluate(train, other, schema, parse_config({"evaluation": SMALL}).evaluation, seed=0, holdout=leaky)


def test_a_holdout_cut_from_the_real_table_fails_the_gate():
    table = pl.read_csv(str(PIMA_CSV)).to_arrow()
    config = parse_config({"evaluation": SMALL})
    train, holdout, other, schema = _thirds(table, config)
    # No entity key and no ids: only the rows themselves can show that a third of this holdout was trained on.
    leaky = pa.concat_tables([holdout, train.slice(0, holdout.num_rows // 2)])
    metrics = evaluate(train, other, schema, config.evaluation, seed=0, holdout=leaky)
    assert metrics["holdout"]["holdout_match_rate"] == pytest.approx(1 / 3, abs=0.01)
    assert metrics["holdout"]["real_duplicate_rate"] == 0.0
    assert _failed(metrics) >= {"holdout", "exact_copies", "closeness", "membership_inference"}
    clean = evaluate(train, other, schema, config.evaluation, seed=0, holdout=holdout)
    assert "holdout" not in _failed(clean)


@pytest.fixture(scope="module")
def coarse():
    """Ten coarse columns of diabetes-130: a fifth of the people share every value with someone else."""
    table = pl.read_csv(str(DIABETES_CSV), null_values=["?"], infer_schema_length=None, columns=COARSE).to_arrow()
    config = parse_config({"evaluation": SMALL})
    return (*_thirds(table, config), config)


def test_a_perfect_generator_of_a_coarse_table_makes_exact_matches_and_passes(coarse):
    train, holdout, other, schema, config = coarse
    metrics = evaluate(train, other, schema, config.evaluation, seed=0, holdout=holdout)
    assert metrics["holdout_exact_collision_rate"] > 0.1  # real people who share every value with a training row
    assert metrics["exact_collision_rate"] > 0.1
    assert metrics["gate"]["verdict"] == "pass", metrics["gate"]["reasons"]


def test_copying_training_rows_of_a_coarse_table_fails(coarse):
    train, holdout, other, schema, config = coarse
    rng = np.random.default_rng(1)
    copies = train.take(np.sort(rng.choice(train.num_rows, other.num_rows // 5, replace=False)))
    copied = pa.concat_tables([other.slice(0, other.num_rows - copies.num_rows), copies])
    metrics = evaluate(train, copied, schema, config.evaluation, seed=0, holdout=holdout)
    assert "exact_copies" in _failed(metrics)
    check = next(c for c in metrics["gate"]["checks"] if c["name"] == "exact_copies")
    assert check["value"] > check["threshold"] > metrics["copy_scale"] * metrics["synthetic_holdout_collisions"]
    assert metrics["training_collisions"] > metrics["exact_collisions"] * 0.99  # every real row is a training row


def _panel(folder) -> dict[str, str]:
    """The Pima people followed over four waves (a panel survey): CSVs of a real, a holdout and a
    "synthetic" third of the people, whose numeric ``person`` id inference takes for a number."""
    rng = np.random.default_rng(0)
    people = pl.read_csv(str(PIMA_CSV))
    ids = rng.choice(10**9, people.height, replace=False) + 10**9
    waves = pl.concat(
        people.with_columns(person=pl.Series(ids), wave=pl.lit(w + 1), Age=pl.col("Age") + w,
                            Glucose=pl.col("Glucose") + pl.Series(rng.integers(-3, 4, people.height)))
        for w in range(4)
    )
    third = dict(zip(ids.tolist(), rng.permutation(np.arange(people.height) % 4).clip(max=2).tolist()))
    waves = waves.with_columns(part=pl.col("person").replace_strict(third))
    paths = {}
    for k, name in enumerate(["real", "holdout", "synthetic"]):
        paths[name] = str(folder / f"{name}.csv")
        waves.filter(pl.col("part") == k).drop("part").write_csv(paths[name])
    return paths


def test_synth_evaluate_takes_the_entity_key_inference_misses(tmp_path):
    from prefect.logging import disable_run_logger

    from tasks.evaluate import evaluate_tables

    paths = _panel(tmp_path)
    found = {}
    for key in (None, "person"):
        config = parse_config({"entity_key": key, "evaluation": SMALL})
        with disable_run_logger():
            found[key] = evaluate_tables.fn(paths["real"], paths["synthetic"], config, str(tmp_path), paths["holdout"])
    missed, declared = found[None], found["person"]
    assert missed["entity_key"] is None and missed["membership_inference"]["unit"] == "row"
    assert declared["entity_key"] == "person" and declared["entity_key_source"].startswith("declared")
    assert declared["membership_inference"]["unit"] == "patient"
    assert declared["propensity"]["split"] == "by patient"
    # Other real people: by person the classifier finds nothing; by row it recognises people it was fitted on
    # from their other waves, and the same clean data look twenty times worse than chance.
    assert declared["pmse_ratio"] < 2 and missed["pmse_ratio"] > 10


def test_other_patients_of_an_appointments_table_pass_by_patient():
    # Patients with several appointments each (static attributes repeated on every row): every split,
    # attack and count works on patients, and other real patients look like chance everywhere.
    from tests.tables import appointments

    frame = appointments(patients=4_000, seed=5).with_columns(
        pl.col(c).str.to_datetime(time_zone="UTC") for c in ("ScheduledDay", "AppointmentDay")
    )
    config = parse_config({"evaluation": SMALL | {"sensitive": ["Hipertension", "Age"]}})
    train, holdout, other, schema = _thirds(frame.to_arrow(), config)
    assert schema.entity_key == "PatientId"
    metrics = evaluate(train, other, schema, config.evaluation, seed=0, holdout=holdout)
    assert metrics["gate"]["verdict"] == "pass", metrics["gate"]["reasons"]
    attacks = metrics["membership_inference"]
    assert attacks["unit"] == "patient" and attacks["member_patients"] == attacks["non_member_patients"] > 250
    assert all(abs(attacks[k] - 0.5) < 0.06 for k in ("patient_distance_auc", "patient_density_auc"))
    disclosure = metrics["attribute_disclosure"]
    assert disclosure["unit"] == "patient" and abs(disclosure["max_advantage"]) < 0.06
    assert metrics["propensity"]["split"] == "by patient" and metrics["pmse_ratio"] < 2.5
