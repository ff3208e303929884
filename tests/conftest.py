"""Shared fixtures: real data from tests/data (see its README), generated tables, an isolated Prefect home."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Prefect must not phone home or touch the user's ~/.prefect, whichever test imports it first.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "tests" / "data"
DIABETES_CSV = TEST_DATA / "diabetes_130_10k.csv"  # the first 10,000 encounters of diabetes-130
HEART_CSV = TEST_DATA / "heart_disease_uci.csv"
PIMA_CSV = TEST_DATA / "pima_diabetes.csv"


def pytest_configure(config):
    home = Path(os.environ.get("PYTEST_PREFECT_HOME", "/tmp")) / f"synth-tests-prefect-{os.getpid()}"
    os.environ.setdefault("PREFECT_HOME", str(home))


#: Config lines for tests about orchestration, not metrics: every evaluation sample small.
SMALL_EVALUATION = """evaluation:
  sample_rows: 500
  distance_rows: 200
  propensity_rows: 500
  attack_rows: 100
  attack_reference_rows: 1000
  utility_rows: 500
"""


def encoded_split(table, *cuts: int):
    """``(layout, parts)``: ``table`` in a seeded random order, cut at ``cuts``, encoded together
    with the schema inference gives it (the real halves the evaluation tests compare)."""
    import numpy as np

    from synth.config import parse_config
    from synth.evaluation.encoding import encode
    from synth.schema import infer_schema

    schema = infer_schema(table, parse_config({}))
    order = np.random.default_rng(0).permutation(table.num_rows)
    bounds = [0, *cuts, table.num_rows]
    return encode(schema, *(table.take(order[start:end]) for start, end in zip(bounds, bounds[1:])))


def breast_cancer_table():
    """Breast Cancer Wisconsin (Diagnostic) as it ships with scikit-learn: 569 rows, 30 features, a 0/1 target."""
    import pyarrow as pa
    from sklearn.datasets import load_breast_cancer

    return pa.Table.from_pandas(load_breast_cancer(as_frame=True).frame, preserve_index=False)


@pytest.fixture(scope="session")
def diabetes_csv() -> Path:
    return DIABETES_CSV


@pytest.fixture(scope="session")
def heart_csv() -> Path:
    return HEART_CSV


@pytest.fixture(scope="session")
def appointments_csv(tmp_path_factory) -> Path:
    """A generated no-show-shaped appointments extract (6,000 patients) as CSV (see tests/tables.py)."""
    from tests.tables import appointments

    path = tmp_path_factory.mktemp("appointments") / "appointments.csv"
    appointments(patients=6_000, seed=0).write_csv(path)
    return path


@pytest.fixture(scope="session")
def mimic_table():
    """The bundled MIMIC-III demo episode table (11k rows, 97 patients)."""
    from synth.demo.mimic import DEMO_DATA_DIR, build_episode_table

    return build_episode_table(DEMO_DATA_DIR)


@pytest.fixture(scope="session")
def diabetes_sample(diabetes_csv):
    """3,000 seeded rows of diabetes-130 as an Arrow table (missing written as '?')."""
    import numpy as np

    from synth.config import parse_config
    from synth.io.sources import read_table

    table = read_table(diabetes_csv, parse_config({"source": {"na_values": ["?"]}}))
    rows = np.sort(np.random.default_rng(0).choice(table.num_rows, 3_000, replace=False))
    return table.take(rows)
