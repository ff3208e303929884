"""A generated three-level extract: patients -> visits -> labs, with dates ordered across tables."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from synth.relational.schema import RelationalSchema, parse_relational

CONFIG = {
    "tables": {
        "patients": {"primary_key": "patient_id"},
        "visits": {"primary_key": "visit_id", "foreign_keys": {"patient_id": "patients.patient_id"}},
        "labs": {"primary_key": "lab_id", "foreign_keys": {"visit_id": "visits.visit_id"}},
    }
}
DAY_US = 86_400 * 1_000_000


def three_level(
    n_patients: int = 300, seed: int = 0, labs_carry_patient: bool = False
) -> tuple[dict[str, pa.Table], RelationalSchema]:
    """Patients with Poisson visits (zeros included), visits with 1 + Poisson(2) labs inside the stay.

    ``labs_carry_patient``: labs also carry their patient's key (a grandparent's key, as
    MIMIC's ICUSTAYS carries ``subject_id``), declared as a second foreign key.

    Older patients visit more often and stay longer, so a parent column moves an
    aggregated child column (count, mean) as the inter-table trends expect.
    """
    rng = np.random.default_rng(seed)
    age = rng.integers(20, 90, n_patients)
    registered = np.datetime64("2020-01-01", "us") + rng.integers(0, 365, n_patients) * np.timedelta64(1, "D")
    patients = pa.table({
        "patient_id": np.arange(1000, 1000 + n_patients),
        "sex": rng.choice(["F", "M"], n_patients),
        "age": age,
        "registered": registered,
    })
    visits_per = rng.poisson(1 + age / 40)
    owner = np.repeat(np.arange(n_patients), visits_per)
    n_visits = len(owner)
    admit = registered[owner] + rng.integers(1, 400, n_visits) * np.timedelta64(1, "D")
    stay_days = rng.gamma(2.0, 1 + age[owner] / 30)
    discharge = admit + (stay_days * DAY_US).astype(np.int64) * np.timedelta64(1, "us")
    visits = pa.table({
        "visit_id": np.arange(5000, 5000 + n_visits),
        "patient_id": patients["patient_id"].to_numpy()[owner],
        "ward": rng.choice(["medical", "surgical", "icu"], n_visits, p=[0.5, 0.35, 0.15]),
        "admitted": admit,
        "discharged": discharge,
    })
    labs_per = 1 + rng.poisson(2, n_visits)
    visit = np.repeat(np.arange(n_visits), labs_per)
    n_labs = len(visit)
    span = (discharge - admit)[visit].astype(np.int64)
    taken = admit[visit] + (rng.uniform(0, 1, n_labs) * span).astype(np.int64) * np.timedelta64(1, "us")
    labs = pa.table({
        "lab_id": [f"L{i:06d}" for i in range(n_labs)],
        "visit_id": visits["visit_id"].to_numpy()[visit],
        "test": rng.choice(["crp", "hb", "wbc"], n_labs),
        "value": np.round(rng.normal(50 + age[owner][visit] / 4, 10), 1),
        "taken": taken,
    })
    config = CONFIG
    if labs_carry_patient:
        labs = labs.add_column(2, "patient_id", pa.array(visits["patient_id"].to_numpy()[visit]))
        keys = {"visit_id": "visits.visit_id", "patient_id": "patients.patient_id"}
        config = {"tables": {**CONFIG["tables"], "labs": {"primary_key": "lab_id", "foreign_keys": keys}}}
    tables = {"patients": patients, "visits": visits, "labs": labs}
    return tables, RelationalSchema.from_config(parse_relational(config), tables)
