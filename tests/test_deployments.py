"""deployments/prefect.yaml deployed with Prefect's own CLI to a real server; serve.py agrees with it."""

from __future__ import annotations

import re

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings

from tests.prefect_server import REPO, prefect_server  # noqa: F401  (fixture)

PREFECT_YAML = REPO / "deployments" / "prefect.yaml"
NAMES = {"monthly-regeneration", "on-demand", "on-demand-gpu", "relational", "evaluation-only", "resample", "tuning",
         "compare", "epsilon-sweep"}


def test_prefect_yaml_names_importable_flows_and_a_monthly_schedule():
    spec = yaml.safe_load(PREFECT_YAML.read_text())
    deployments = {d["name"]: d for d in spec["deployments"]}
    assert set(deployments) == NAMES
    for deployment in deployments.values():
        module, function = deployment["entrypoint"].split(":")
        assert (REPO / module).is_file()
        assert f"def {function}(" in (REPO / module).read_text()
    (schedule,) = deployments["monthly-regeneration"]["schedules"]
    assert (schedule["cron"], schedule["timezone"]) == ("0 2 1 * *", "Europe/London")
    assert not re.search(r"\w+://[^\s/@]+:[^\s/@]+@", PREFECT_YAML.read_text())  # no credentials in URLs


def test_serve_offers_the_cpu_deployments_of_prefect_yaml():
    from deployments.serve import deployments

    served = {d.name for d in deployments()}
    assert served == NAMES - {"on-demand-gpu"}


@pytest.mark.e2e
def test_prefect_deploy_creates_every_deployment(prefect_server):  # noqa: F811
    for pool in ("synth-cpu", "synth-gpu"):
        prefect_server.cli("work-pool", "create", pool, "--type", "process")
    for name, value in (
        ("synth_monthly_source", "/data/extracts/diabetes"),
        ("synth_monthly_output", "/data/releases/{month}"),
        ("synth_monthly_config", "/data/config.yaml"),
    ):
        prefect_server.cli("variable", "set", name, value)
    prefect_server.cli("--no-prompt", "deploy", "--all", "--prefect-file", str(PREFECT_YAML), timeout=300)

    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}), get_client(sync_client=True) as client:
        found = {d.name: d for d in client.read_deployments()}
    assert NAMES <= set(found)
    monthly = found["monthly-regeneration"]
    assert monthly.schedules[0].schedule.cron == "0 2 1 * *"
    assert monthly.schedules[0].schedule.timezone == "Europe/London"
    assert monthly.parameters["params"]["output"] == "/data/releases/{month}"
    assert monthly.work_pool_name == "synth-cpu" and found["on-demand-gpu"].work_pool_name == "synth-gpu"
    form = found["on-demand"].parameter_openapi_schema["definitions"]["GenerateParameters"]["properties"]
    assert {"source", "rows", "dp_epsilon", "epochs", "seed", "sql_table", "dask_address"} <= set(form)
    assert form["dp_epsilon"]["description"].startswith("differential privacy budget")
    tuning = found["tuning"].parameter_openapi_schema["definitions"]["TuneParameters"]["properties"]
    assert {"source", "output", "trials", "timeout_seconds", "min_privacy_ratio", "seed"} <= set(tuning)
    compare = found["compare"].parameter_openapi_schema["definitions"]["CompareParameters"]["properties"]
    assert {"source", "output", "config_path", "models", "rows", "seed"} <= set(compare)
    sweep = found["epsilon-sweep"].parameter_openapi_schema["definitions"]["SweepParameters"]["properties"]
    assert sweep["epsilons"]["default"] == [0.5, 1.0, 3.0, 10.0, None]
    assert not found["compare"].schedules and not found["epsilon-sweep"].schedules
