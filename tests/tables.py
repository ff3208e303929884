"""Tables the tests generate: realistic shapes with no real person behind them.

``appointments`` stands in for the public no-show data set, whose licence (CC BY-NC-SA)
keeps it out of this repository: patients with several appointments each, static
attributes per patient, two ordered datetimes (ISO 8601 with ``Z``), long-tailed
neighbourhoods and a handful of bad rows, as in the real extract.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl

NEIGHBOURHOODS = [f"BAIRRO {name}" for name in (
    "CENTRO", "JARDIM DA PENHA", "MATA DA PRAIA", "PONTAL DE CAMBURI", "REPUBLICA", "GOIABEIRAS", "ANDORINHAS",
    "CONQUISTA", "NOVA PALESTINA", "DA PENHA", "TABUAZEIRO", "BENTO FERREIRA", "SAO PEDRO", "SANTA MARTHA",
    "SAO CRISTOVAO", "MARUIPE", "GRANDE VITORIA", "SAO BENEDITO", "ILHA DAS CAIEIRAS", "SANTO ANDRE", "SOLON BORGES",
    "BONFIM", "JARDIM CAMBURI", "MARIA ORTIZ", "JABOUR", "ANTONIO HONORIO", "RESISTENCIA", "ILHA DE SANTA MARIA",
    "JUCUTUQUARA", "MONTE BELO", "GURIGICA", "SANTA TEREZA", "CRUZAMENTO", "SANTOS DUMONT", "SANTA LUIZA",
    "PRAIA DO SUA", "FORTE SAO JOAO", "INHANGUETA", "SANTO ANTONIO", "CARATOIRA",
)]


def appointments(patients: int = 6_000, seed: int = 0) -> pl.DataFrame:
    """A no-show-shaped appointments table: ~1.7 rows per patient, at most 40.

    Columns as in the public extract: ``PatientId`` (a long integer id), ``AppointmentID``
    (unique), ``Gender``, ``ScheduledDay`` and ``AppointmentDay`` (UTC; the appointment
    day follows the scheduling day in all but ~0.1% of rows), ``Age``, ``Neighbourhood``
    (40 levels, Zipf-like), five 0/1 or small-count flags and ``No-show`` (Yes/No).
    """
    rng = np.random.default_rng(seed)
    drawn = rng.integers(10**11, 10**15, size=2 * patients)
    ids = drawn[np.sort(np.unique(drawn, return_index=True)[1])][:patients]  # distinct, in draw order
    visits = np.minimum(rng.geometric(0.6, size=patients), 40)
    gender = rng.choice(["F", "M"], size=patients, p=[0.65, 0.35])
    age = np.clip(rng.gamma(2.2, 17.0, size=patients).round().astype(int), 0, 115)
    weights = 1.0 / np.arange(1, len(NEIGHBOURHOODS) + 1)
    place = rng.choice(len(NEIGHBOURHOODS), size=patients, p=weights / weights.sum())
    hypertension = (rng.random(patients) < np.clip((age - 20) / 80, 0.02, 0.6)).astype(int)
    diabetes = (rng.random(patients) < 0.25 * hypertension + 0.02).astype(int)
    scholarship = (rng.random(patients) < 0.1).astype(int)
    alcoholism = (rng.random(patients) < 0.03).astype(int)
    handicap = rng.choice(5, size=patients, p=[0.98, 0.015, 0.003, 0.001, 0.001])

    row_patient = np.repeat(np.arange(patients), visits)
    n = len(row_patient)
    start = datetime(2016, 3, 1, tzinfo=UTC).timestamp()
    scheduled = start + rng.uniform(0, 60 * 86_400, size=n)
    lead_days = rng.geometric(0.12, size=n)
    appointment = (np.floor(scheduled / 86_400) + lead_days) * 86_400
    bad = rng.random(n) < 0.001  # as in the real extract: a few appointments before their scheduling
    appointment[bad] = np.floor(scheduled[bad] / 86_400) * 86_400 - 86_400
    sms = (rng.random(n) < np.where(lead_days > 2, 0.5, 0.05)).astype(int)
    no_show = rng.random(n) < 0.12 + 0.1 * (lead_days > 10) - 0.04 * sms
    return pl.DataFrame(
        {
            "PatientId": ids[row_patient],
            "AppointmentID": rng.permutation(n) + 5_030_000,
            "Gender": gender[row_patient],
            "ScheduledDay": _iso_z(scheduled),
            "AppointmentDay": _iso_z(appointment),
            "Age": age[row_patient],
            "Neighbourhood": np.array(NEIGHBOURHOODS)[place[row_patient]],
            "Scholarship": scholarship[row_patient],
            "Hipertension": hypertension[row_patient],
            "Diabetes": diabetes[row_patient],
            "Alcoholism": alcoholism[row_patient],
            "Handcap": handicap[row_patient],
            "SMS_received": sms,
            "No-show": np.where(no_show, "Yes", "No"),
        }
    )


def _iso_z(seconds: np.ndarray) -> list[str]:
    return [datetime.fromtimestamp(int(s), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for s in seconds]


def identified_patients(patients: int = 300, seed: int = 0) -> pl.DataFrame:
    """A clinic extract that names its patients: realistic fake identifiers as its "real" values.

    Per patient (static): ``nhs_number`` (valid mod-11 numbers outside the 999 test range,
    written ``### ### ####``; the patient key), ``first_name``, ``last_name``,
    ``date_of_birth`` (a date), ``postcode`` (UK shape), ``phone`` (Faker en_GB) and
    ``email`` (free mail domains); ``sex``. Per visit (1-3 per patient): ``visit_date``,
    ``hba1c`` and ``systolic_bp``. Every identifier comes from a seeded Faker, so the values
    are the test's own "real" ones and no real person's.
    """
    from datetime import date, timedelta

    from faker import Faker

    from synth.pii.detect import nhs_check_digit

    fake = Faker("en_GB")
    fake.seed_instance(seed)
    rng = np.random.default_rng(seed)
    numbers: list[str] = []
    while len(numbers) < patients:
        digits = [int(c) for c in str(rng.integers(400_000_000, 800_000_000))]
        check = nhs_check_digit(digits)
        text = "".join(map(str, digits + [check])) if check is not None else ""
        if text and text not in numbers:
            numbers.append(f"{text[:3]} {text[3:6]} {text[6:]}")
    person = {
        "nhs_number": numbers,
        "first_name": [fake.first_name() for _ in range(patients)],
        "last_name": [fake.last_name() for _ in range(patients)],
        "date_of_birth": [fake.date_of_birth(minimum_age=18, maximum_age=95) for _ in range(patients)],
        "postcode": [fake.postcode() for _ in range(patients)],
        "phone": [fake.phone_number() for _ in range(patients)],
        "email": [fake.free_email() for _ in range(patients)],
        "sex": rng.choice(["F", "M"], size=patients).tolist(),
    }
    visits = rng.integers(1, 4, size=patients)
    row_patient = np.repeat(np.arange(patients), visits)
    start = date(2024, 1, 1)
    frame = pl.DataFrame({name: [values[i] for i in row_patient] for name, values in person.items()})
    return frame.with_columns(
        visit_date=pl.Series([start + timedelta(days=int(d)) for d in rng.integers(0, 365, size=len(row_patient))]),
        hba1c=pl.Series(rng.normal(48, 9, size=len(row_patient)).round(1)),
        systolic_bp=pl.Series(rng.normal(132, 15, size=len(row_patient)).round()),
    )
