"""The patient-level synthesizer on real extracts: static attributes, rows per patient,
date order, declared constraints, patient-level DP, fresh ids, persistence."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from scipy.stats import ks_2samp

from synth.config import parse_config
from synth.constraints import count_violations
from synth.demo.mimic import DEMO_DATA_DIR, build_episode_table
from synth.evaluation.entities import entity_metrics
from synth.io.sources import read_table
from synth.models import PatientSynthesizer, load_synthesizer, synthesizer_for
from synth.schema import infer_schema

APPOINTMENTS = {"columns": {"PatientId": "identifier"}, "entity_key": "PatientId", "seed": 0}


def _patients_subset(table: pa.Table, key: str, patients: int, seed: int) -> pa.Table:
    keys = pc.unique(table[key])
    chosen = keys.take(pa.array(np.random.default_rng(seed).choice(len(keys), patients, replace=False)))
    return table.filter(pc.is_in(table[key], value_set=chosen))


@pytest.fixture(scope="module")
def appointments(appointments_csv):
    config = parse_config({**APPOINTMENTS, "model": {"epochs": 25}})
    table = _patients_subset(read_table(appointments_csv, config), "PatientId", 4_000, seed=1)
    schema = infer_schema(table, config)
    model = synthesizer_for(config, schema).fit(table, schema)
    synthetic = model.sample(table.num_rows, seed=5)
    return table, schema, config, model, synthetic


def test_the_patient_model_is_chosen_and_finds_the_static_columns(appointments):
    _, _, _, model, _ = appointments
    assert isinstance(model, PatientSynthesizer)
    assert {"Gender", "Neighbourhood", "Hipertension"} <= set(model.plan_.static)
    links = {link.column: link.parent for link in model.plan_.links}
    assert links["AppointmentDay"] == "ScheduledDay"  # scheduled -> appointment


def test_static_attributes_are_constant_within_every_synthetic_patient(appointments):
    table, schema, config, _, synthetic = appointments
    metrics = entity_metrics(table.to_pandas(), synthetic.to_pandas(), schema, config.constraints)
    assert metrics["static_consistency"] == 1.0
    assert {"Gender", "Neighbourhood"} <= set(metrics["static_columns"])


def test_rows_per_patient_follow_the_real_distribution(appointments):
    table, schema, config, _, synthetic = appointments
    metrics = entity_metrics(table.to_pandas(), synthetic.to_pandas(), schema, config.constraints)
    assert synthetic.num_rows == table.num_rows
    assert metrics["rows_per_entity_ks"] >= 0.9, metrics["rows_per_entity"]


def test_dates_keep_their_order_no_worse_than_the_real_data(appointments):
    table, schema, config, _, synthetic = appointments
    order = entity_metrics(table.to_pandas(), synthetic.to_pandas(), schema, config.constraints)["date_order"]
    pair = order["ScheduledDay <= AppointmentDay"]
    assert pair["synthetic"] <= pair["real"]


def test_synthetic_ids_are_fresh_and_shared_by_a_patients_rows(appointments):
    table, _, _, _, synthetic = appointments
    real_ids = set(table["PatientId"].to_pylist())
    ids = synthetic["PatientId"].to_pylist()
    assert not real_ids & set(ids)
    assert len(set(ids)) > 100 and len(set(ids)) < len(ids)  # patients with several rows
    assert len(set(synthetic["AppointmentID"].to_pylist())) == synthetic.num_rows


@pytest.fixture(scope="module")
def mimic_small():
    table = build_episode_table(DEMO_DATA_DIR, max_events_per_stay=8)
    config = parse_config(
        {
            "entity_key": "subject_id",
            "seed": 2,
            "columns": {"hadm_id": "identifier", "icustay_id": "identifier", "label": "categorical"},
            "model": {"epochs": 15},
            "constraints": [
                {"type": "inequality", "low": "admittime", "high": "dischtime"},
                {"type": "inequality", "low": "intime", "high": "outtime"},
                {"type": "age", "column": "age", "birth": "dob", "at": "admittime", "top_code": 90},
                {"type": "range", "column": "value", "min": 0, "max": 400},
                {"type": "combination", "columns": ["gender", "first_careunit"], "forbidden": [["F", "CSRU"]]},
            ],
        }
    )
    schema = infer_schema(table, config)
    return table, schema, config, synthesizer_for(config, schema).fit(table, schema)


def test_declared_constraints_hold_in_every_synthetic_row(mimic_small):
    table, _, config, model = mimic_small
    synthetic = model.sample(2_000, seed=3).to_pandas()
    real = count_violations(table.to_pandas(), config.constraints)
    assert real["0.0 <= value <= 400.0"] > 0 and real["forbidden combinations of gender, first_careunit"] > 0
    assert count_violations(synthetic, config.constraints) == {k: 0 for k in real}  # AND semantics: all hold


def test_synthetic_dates_stay_inside_the_real_range(mimic_small):
    """MIMIC shifts the birth dates of patients over 89 by ~300 years: a birth-to-admission step
    drawn for one kind of patient and added to the other's birth date would leave the calendar."""
    table, _, _, model = mimic_small
    synthetic = model.sample(3_000, seed=4).to_pandas()
    real = table.to_pandas()
    for name in ("dob", "admittime", "intime", "charttime", "outtime"):
        values = synthetic[name].dropna()
        assert values.min() >= real[name].min() and values.max() <= real[name].max(), name
    for name in ("dod", "dischtime", "deathtime"):  # later dates, moved only by order repair
        assert (synthetic[name].dropna().dt.year < 2260).all(), name  # nothing pinned to the calendar's end


def test_a_death_follows_the_first_admission_as_in_the_real_data(mimic_small):
    """Death is drawn with the first admission it follows (both patient-level, death stored as
    days after that anchor), not from the birth date alone: when both hung off the birth date,
    no synthetic patient died within a year of admission (median 35 years after), against 72%
    of the real ones (median 71 days)."""
    table, _, _, model = mimic_small

    def days_to_death(frame):
        patients = frame.groupby("subject_id").agg(first=("admittime", "min"), dod=("dod", "first"))
        return (patients["dod"] - patients["first"]).dt.days.dropna()

    real, synthetic = days_to_death(table.to_pandas()), days_to_death(model.sample(3_000, seed=3).to_pandas())
    assert (real <= 365).mean() > 0.6 and (synthetic <= 365).mean() > 0.25
    assert ks_2samp(real, synthetic).statistic < 0.6  # 0.40 measured; 0.997 with death after birth


def test_a_saved_patient_model_samples_the_same_rows(mimic_small, tmp_path):
    _, _, _, model = mimic_small
    model.save(tmp_path / "model")
    loaded = load_synthesizer(tmp_path / "model")
    assert isinstance(loaded, PatientSynthesizer)
    assert loaded.sample(700, seed=8, start=1_000).equals(model.sample(700, seed=8, start=1_000))


def test_patient_level_dp_spends_at_most_its_budget_and_hides_rare_values(appointments_csv):
    config = parse_config({**APPOINTMENTS, "model": {"epochs": 3}, "privacy": {"epsilon": 4.0}})
    table = _patients_subset(read_table(appointments_csv, config), "PatientId", 1_500, seed=2)
    # One patient gets a neighbourhood no one else has: DP must never release it.
    lonely = table["PatientId"][0].as_py()
    hood = pc.if_else(pc.equal(table["PatientId"], lonely), "ONLY-ONE-PATIENT-LIVES-HERE", table["Neighbourhood"])
    table = table.set_column(table.column_names.index("Neighbourhood"), "Neighbourhood", hood)
    schema = infer_schema(table, config)
    model = synthesizer_for(config, schema).fit(table, schema)
    report = model.privacy_
    assert report.enabled and report.unit == "patient"
    assert set(report.parts) == {"count", "transforms", "patients", "rows"}
    assert report.epsilon_spent <= 4.0 + 1e-9
    assert report.parts["transforms"]["epsilon"] == pytest.approx(0.4)
    assert report.parts["count"]["epsilon"] == pytest.approx(0.08)
    assert report.delta < 1 / (10 * pc.count_distinct(table["PatientId"]).as_py())  # delta << 1/n
    released = model.patients_.domain_.columns["Neighbourhood"].categories
    assert "ONLY-ONE-PATIENT-LIVES-HERE" not in released
    synthetic = model.sample(3_000, seed=1)
    assert "ONLY-ONE-PATIENT-LIVES-HERE" not in set(synthetic["Neighbourhood"].to_pylist())
    # The contribution bound is public and bounds a synthetic patient's rows too.
    rows_per_patient = pc.value_counts(synthetic["PatientId"]).field("counts")
    assert pc.max(rows_per_patient).as_py() <= config.entity.max_rows_per_entity
