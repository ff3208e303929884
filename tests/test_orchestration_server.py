"""A deployment served against a real ``prefect server``, triggered through the API, completes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from tests.conftest import SMALL_EVALUATION
from tests.prefect_server import REPO, prefect_server, stop  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e

CONFIG = """
seed: 1
entity_key: patient_nbr
columns: {encounter_id: identifier}
model: {epochs: 1}
preprocess: {partition_rows: 1000, workers: 1}
""" + SMALL_EVALUATION


@pytest.fixture
def extract(diabetes_csv, tmp_path) -> Path:
    frame = pl.read_csv(diabetes_csv, null_values=["?"], infer_schema_length=None).sample(1_500, seed=4)
    pq.write_table(frame.to_arrow(), tmp_path / "extract.parquet")
    (tmp_path / "config.yaml").write_text(CONFIG)
    return tmp_path / "extract.parquet"


def _wait_for_deployment(name: str, server_process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            try:
                client.read_deployment_by_name(name)
                return
            except Exception:
                if server_process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{name} was never served:\n{log.read_text()[-3000:]}")
                time.sleep(1)


def test_served_deployment_triggered_through_the_api_completes(prefect_server, extract, tmp_path):  # noqa: F811
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        serving = subprocess.Popen(
            [sys.executable, "-m", "deployments.serve"],
            cwd=REPO,
            env=prefect_server.env(XDG_CACHE_HOME=str(tmp_path / "cache"), PREFECT_LOGGING_LEVEL="INFO"),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}):
            _wait_for_deployment("generate/on-demand", serving, log)
            with get_client(sync_client=True) as client:
                monthly = client.read_deployment_by_name("generate/monthly-regeneration")
            assert monthly.schedules[0].schedule.cron == "0 2 1 * *"
            assert monthly.schedules[0].schedule.timezone == "Europe/London"
            params = {
                "source": str(extract),
                "output": str(tmp_path / "out"),
                "config_path": str(tmp_path / "config.yaml"),
            }
            run = run_deployment("generate/on-demand", parameters={"params": params}, timeout=600, poll_interval=2)
        assert run.state.is_completed(), f"{run.state}\n{log.read_text()[-4000:]}"
    finally:
        stop(serving)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["run"]["id"] == str(run.id)
    assert manifest["run"]["deployment"] == "on-demand"
    assert manifest["rows"]["synthetic"] == 1_500
