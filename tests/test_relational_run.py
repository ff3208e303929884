"""`synth run` on a relational extract (a config's tables:, no --source) and `synth demo --relational`, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.csv as pcsv
import pyarrow.dataset as ds
import pytest
import sqlalchemy as sa

from synth.config import load_config
from synth.errors import ConfigError
from tests.relational_tables import three_level
from tests.test_cli import synth

MODEL = "model: {epochs: 30, hidden_dims: [64, 64], batch_size: 128, latent_dim: 8}\n"
GATE = "gate: {enforce: false, reason: generated test data}\n"


def _extract(folder: Path, orphan: bool = False) -> Path:
    """The three-level extract: patients in SQLite, visits and labs as CSV files, keys mostly inferred."""
    folder.mkdir(parents=True, exist_ok=True)
    tables, _ = three_level()
    engine = sa.create_engine(f"sqlite:///{folder / 'clinic.db'}")
    tables["patients"].to_pandas().to_sql("patients", engine, index=False)
    engine.dispose()
    for name in ("visits", "labs"):
        pcsv.write_csv(tables[name], folder / f"{name}.csv")
    if orphan:  # a lab result of a visit that is not in the extract
        with (folder / "labs.csv").open("a") as labs:
            labs.write('"L999999",424242,"hb",50.0,2020-07-31 00:40:34\n')
    config = folder / "extract.yaml"
    config.write_text(
        "tables:\n"
        "  patients: {source: 'sql:patients', primary_key: patient_id}\n"
        "  visits: {source: visits.csv, foreign_keys: {patient_id: patients.patient_id}}\n"
        "  labs: {source: labs.csv}\n" + MODEL + GATE
    )
    return config


def _run(config: Path, out: Path, tmp_path: Path, monkeypatch, *extra: str):
    monkeypatch.setenv("SYNTH_SQL_URL", f"sqlite:///{config.parent / 'clinic.db'}")  # the patients table's database
    return synth("run", "--config", str(config), "--output", str(out), *extra, tmp_path=tmp_path, level="INFO")


def _check_release(out: Path, tables: list[str]) -> dict:
    """One folder of parts per table, no orphans or broken date orders, KS >= 0.9 per relation, a report
    section per table, a manifest listing every table's parts."""
    metrics = json.loads((out / "metrics.json").read_text())
    assert sorted(p.name for p in (out / "synthetic").iterdir()) == sorted(tables)
    for name in tables:
        assert ds.dataset(out / "synthetic" / name).count_rows() == metrics["rows"][name]["synthetic"] > 0
    assert set(metrics["orphans"].values()) == {0}
    assert metrics["date_orders"] and sum(metrics["date_orders"].values()) == 0
    assert len(metrics["cardinality"]) == len(tables) - 1 and min(metrics["cardinality"].values()) >= 0.9
    report = (out / "report.html").read_text()
    for name in tables:
        assert f'id="table-{name}"' in report
    assert report.count('class="table-section"') == len(tables)
    manifest = json.loads((out / "manifest.json").read_text())
    listed = {entry["path"] for entry in manifest["files"]}
    for name in tables:
        assert manifest["tables"][name] and set(manifest["tables"][name]) <= listed
    return metrics


@pytest.mark.e2e
def test_a_three_level_extract_runs_from_its_config_alone(tmp_path, monkeypatch):
    config = _extract(tmp_path / "extract")
    out = tmp_path / "out"
    done = _run(config, out, tmp_path, monkeypatch, "--sql-prefix", "synth_")
    console = done.stdout + done.stderr
    assert done.returncode == 0, console[-3000:]
    metrics = _check_release(out, ["patients", "visits", "labs"])
    # every table also went to SQL beside the real one, with its keys, in one transaction
    engine = sa.create_engine(f"sqlite:///{config.parent / 'clinic.db'}")
    inspector = sa.inspect(engine)
    assert {t for t in inspector.get_table_names() if t.startswith("synth_")} == {"synth_patients", "synth_visits",
                                                                                   "synth_labs"}
    assert [k["referred_table"] for k in inspector.get_foreign_keys("synth_labs")] == ["synth_visits"]
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM synth_labs").scalar() == metrics["rows"]["labs"]["synthetic"]
    engine.dispose()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sinks"][0]["tables"]["synth_labs"] == metrics["rows"]["labs"]["synthetic"]
    # keys the config leaves out are inferred, and said
    assert "labs.visit_id -> visits.visit_id is a foreign key: same name, every value found in 'visits'" in console
    assert "labs.lab_id is the primary key of 'labs'" in console
    assert metrics["key_inferences"]
    assert min(q["quality_score"] for q in metrics["quality"].values()) >= 0.8
    # privacy by patient: about a fifth of the patients and every row under them held out of training, the flat
    # privacy checks computed on every table against them, in metrics.json, the report and the gate
    rows = metrics["rows"]
    assert all(rows[n]["training"] + rows[n]["holdout"] == rows[n]["real"] for n in rows)
    assert 0.1 < rows["patients"]["holdout"] / rows["patients"]["real"] < 0.3
    assert "held out" in console and "patients (patients rows) and every row under them" in console
    privacy = metrics["privacy"]
    assert privacy["unknown"] is None and sorted(privacy["tables"]) == ["labs", "patients", "visits"]
    for found in privacy["tables"].values():
        assert [c["name"] for c in found["checks"]] == ["holdout", "exact_copies", "closeness", "closeness_tail",
                                                        "membership_inference"]
        assert 0 <= found["dcr_median"] <= 1 and 0.5 <= found["mia_auc"] <= 1
    [check] = [c for c in metrics["gate"]["checks"] if c["name"] == "privacy"]
    failed = [(n, c["name"]) for n, f in privacy["tables"].items() for c in f["checks"] if not c["passed"]]
    assert check["passed"] == (not failed) and check["value"] == len(failed)
    assert all(f"table {n!r}: {c}: " in check["message"] for n, c in failed)
    assert "unknown" not in check["message"]
    report = (out / "report.html").read_text()
    assert report.count('<table class="privacy">') == 3 and 'id="privacy-holdout"' in report
    # the gate is reported with its reason, and the verify command accepts the folder
    assert metrics["gate"]["summary"].startswith("NOT ENFORCED: generated test data")
    assert synth("verify", str(out), tmp_path=tmp_path).returncode == 0


@pytest.mark.e2e
def test_an_orphan_stops_the_run_naming_table_column_and_count(tmp_path, monkeypatch):
    config = _extract(tmp_path / "extract", orphan=True)
    out = tmp_path / "out"
    done = _run(config, out, tmp_path, monkeypatch)
    assert done.returncode == 1, done.stderr[-3000:]
    [said] = [line for line in done.stderr.splitlines() if line.startswith("error:")]  # one line
    assert said.startswith("error: the extract's keys are not intact") and "labs.visit_id: 1 row orphan" in said
    assert "Traceback" not in done.stderr
    assert not out.exists() or not any(out.iterdir())  # nothing written


@pytest.mark.e2e
def test_the_mimic_demo_runs_as_four_related_tables(tmp_path):
    out = tmp_path / "demo"
    # 30 epochs rather than the demo's 60: ~40 s in all on 2 cores, every relation's KS still >= 0.94
    done = synth("demo", "--relational", "--epochs", "30", "--output", str(out), tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]  # the gate is reported, not enforced (public data)
    metrics = _check_release(out, ["patients", "admissions", "icustays", "outputevents"])
    assert metrics["rows"]["outputevents"]["real"] == 11_319
    assert metrics["gate"]["enforced"] is False and "public MIMIC-III demo" in metrics["gate"]["reason"]
    assert metrics["privacy"]["unknown"] is None and len(metrics["privacy"]["tables"]) == 4
    print({n: {c["name"]: c["passed"] for c in f["checks"]} for n, f in metrics["privacy"]["tables"].items()})
    print(json.dumps({k: metrics[k] for k in ("cardinality", "orphans", "date_orders")}, indent=1))
    print({name: round(q["quality_score"], 3) for name, q in metrics["quality"].items()})


@pytest.mark.e2e
def test_a_second_dataset_patients_and_their_encounters(tmp_path):
    """Diabetes-130 (real encounters, 8,167 patients in the 10,000 rows) split into the two tables a hospital
    would hand over: patients (patient-level columns) and encounters (one row per hospital stay)."""
    import polars as pl

    from tests.conftest import DIABETES_CSV

    flat = pl.read_csv(DIABETES_CSV, null_values=["?"], infer_schema_length=None)
    patients = flat.group_by("patient_nbr", maintain_order=True).first().select("patient_nbr", "race", "gender")
    encounters = flat.select("encounter_id", "patient_nbr", "age", "admission_type_id", "time_in_hospital",
                             "num_lab_procedures", "num_medications", "number_diagnoses", "A1Cresult", "readmitted")
    patients.write_csv(tmp_path / "patients.csv")
    encounters.write_csv(tmp_path / "encounters.csv")
    config = tmp_path / "diabetes.yaml"
    config.write_text(  # the foreign key is inferred: same name as the patients' key, every value found there
        "tables:\n  patients: {source: patients.csv, primary_key: patient_nbr}\n"
        "  encounters: {source: encounters.csv, primary_key: encounter_id}\n"
        "columns: {admission_type_id: categorical}\n"
        "model: {epochs: 10, hidden_dims: [64, 64], batch_size: 256, latent_dim: 8}\n" + GATE
    )
    out = tmp_path / "out"
    done = synth("run", "--config", str(config), "--output", str(out), tmp_path=tmp_path, level="INFO")
    console = done.stdout + done.stderr
    assert done.returncode == 0, console[-3000:]
    assert "encounters.patient_nbr -> patients.patient_nbr is a foreign key" in console
    metrics = json.loads((out / "metrics.json").read_text())
    assert sorted(p.name for p in (out / "synthetic").iterdir()) == ["encounters", "patients"]
    assert set(metrics["orphans"].values()) == {0}
    print({k: metrics[k] for k in ("cardinality", "rows")}, {n: q["quality_score"] for n, q in metrics["quality"].items()})
    assert min(metrics["cardinality"].values()) >= 0.9
    assert min(q["quality_score"] for q in metrics["quality"].values()) >= 0.7


@pytest.mark.e2e
def test_the_issues_two_table_config_runs_as_written(tmp_path):
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(0)
    patients = pa.table({"id": np.arange(1, 81), "age": rng.integers(20, 90, 80)})
    owner = np.repeat(np.arange(1, 81), rng.poisson(2, 80))
    labs = pa.table({"id": owner, "value": np.round(rng.normal(50, 10, len(owner)), 1)})
    pcsv.write_csv(patients, tmp_path / "patients.csv")
    pcsv.write_csv(labs, tmp_path / "labs.csv")
    config = tmp_path / "extract.yaml"
    config.write_text("tables:\n  patients: {source: patients.csv, primary_key: id}\n"
                      "  labs: {source: labs.csv, foreign_keys: {id: patients.id}}\n" + MODEL + GATE)
    out = tmp_path / "out"
    done = synth("run", "--config", str(config), "--output", str(out), tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in (out / "synthetic").iterdir()) == ["labs", "patients"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["orphans"] == {"labs.id -> patients.id": 0} and metrics["cardinality"]["labs.id -> patients.id"] >= 0.9


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "{csv}"], "--source and the tables: section of"),
        ([], "give --source (one table), or a --config whose tables: section"),
        (["--source", "{csv}", "--sql-prefix", "s_"], "--sql-prefix writes the tables of a relational extract"),
    ],
)
def test_source_and_tables_are_mutually_exclusive(tmp_path, args, message):
    config = _extract(tmp_path / "extract")
    if not args or "--sql-prefix" in args:
        config.write_text(MODEL)
    filled = [a.format(csv=tmp_path / "extract" / "labs.csv") for a in args]
    done = synth("run", "--config", str(config), "--output", str(tmp_path / "out"), *filled, tmp_path=tmp_path)
    assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_the_tables_config_hangs_under_the_pipeline_config(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("tables:\n  patients: {source: p.csv, primary_key: id}\n"
                      "  labs: {source: 'sql:SELECT * FROM labs', foreign_keys: {id: patients.id}}\n")
    loaded = load_config(config)
    assert loaded.tables["patients"].source == str(tmp_path / "p.csv")  # read from beside the config
    assert loaded.tables["labs"].source == "sql:SELECT * FROM labs"
    assert loaded.relational().tables["labs"].foreign_keys == {"id": "patients.id"}
    for text, message in [
        ("tables:\n  p: {source: ../p.csv}\n", "tables.p.source '../p.csv' leads out of the config's folder"),
        ("tables:\n  p: {primary_key: id}\n", "tables ['p'] have no source"),
        ("tables:\n  'p/q': {source: p.csv}\n", "must be letters, digits, _ or -"),
        ("tables:\n  p: {source: p.csv, foreign_keys: {id: p}}\n", "must read 'table.column'"),
    ]:
        config.write_text(text)
        with pytest.raises(ConfigError) as caught:
            load_config(config)
        assert message in str(caught.value)
