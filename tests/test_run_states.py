"""Run states tell the truth: a refused release is a Failed run an automation can match; a hung
run ends (TimedOut) and frees its output folder; the timeout is a setting."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from prefect.client.orchestration import get_client
from prefect.events.filters import EventFilter, EventResourceFilter
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.parameters import DEFAULT_FLOW_TIMEOUT_SECONDS, FLOW_TIMEOUT_ENV, flow_timeout_seconds
from synth.errors import ConfigError
from synth.runs import LOCK, OutputLock
from tests.conftest import PIMA_CSV, SMALL_EVALUATION
from tests.prefect_server import REPO, prefect_server  # noqa: F401  (fixture)

#: What an operator writes to be told of refused releases only (see tasks.evaluate.run_outcome).
GATE_AUTOMATION = {
    "expect": {"prefect.flow-run.Failed"},
    "match": {"prefect.resource.id": "prefect.flow-run.*", "prefect.state-message": "Release gate failed*"},
    "posture": "Reactive",
    "threshold": 1,
}


def _events(flow_run_id, name: str, wait: float = 30.0) -> list:
    """The flow run's events called ``name``, read back from Prefect's API (persisted within seconds)."""
    deadline = time.monotonic() + wait
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_events(
                filter=EventFilter(resource=EventResourceFilter(id=[f"prefect.flow-run.{flow_run_id}"])), limit=50
            )
            found = [e for e in page.events if e.event == name]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.5)


@pytest.mark.e2e
def test_a_refused_release_ends_the_run_failed_with_the_reasons_and_automations_match_it(tmp_path):
    from prefect.server.events.schemas.automations import EventTrigger
    from prefect.server.events.schemas.events import ReceivedEvent

    from flows.evaluate import evaluate
    from flows.parameters import EvaluateParameters
    from tasks.evaluate import ReleaseRefused

    (tmp_path / "config.yaml").write_text(SMALL_EVALUATION)
    # The real table judged against itself, without a holdout: the gate cannot pass.
    params = EvaluateParameters(real=str(PIMA_CSV), synthetic=str(PIMA_CSV), output=str(tmp_path / "out"),
                                config_path=str(tmp_path / "config.yaml"))
    state = evaluate(params, return_state=True)

    assert state.is_failed() and state.name == "Failed"
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())  # the outputs are all there
    reasons = metrics["gate"]["reasons"]
    assert len(reasons) >= 2 and any(r.startswith("holdout: unknown") for r in reasons)
    assert state.message == "Release gate failed: " + "; ".join(reasons)
    refused = state.result(raise_on_failure=False)
    assert isinstance(refused, ReleaseRefused) and refused.metrics["gate"]["reasons"] == reasons
    with pytest.raises(ReleaseRefused, match="^Release gate failed: holdout: unknown"):
        evaluate(params)  # a caller without return_state gets the refusal, the metrics on it
    assert not (tmp_path / "out" / LOCK).exists()

    (event,) = _events(state.state_details.flow_run_id, "prefect.flow-run.Failed")
    assert event.resource["prefect.state-message"] == state.message
    received = ReceivedEvent.model_validate(event.model_dump())
    assert EventTrigger(**GATE_AUTOMATION).covers(received)
    assert EventTrigger(**{**GATE_AUTOMATION, "expect": {"prefect.flow-run.Completed"}}).covers(received) is False


#: ``synth run`` with preprocessing stuck (a mount that stopped answering): nothing returns.
HUNG_RUN = """
import sys, time
import tasks.preprocess
tasks.preprocess.preprocess = lambda *args, **kwargs: time.sleep(3600)
from flows.cli import app
app(sys.argv[1:])
"""


@pytest.mark.e2e
def test_a_hung_run_times_out_and_frees_its_output_folder(tmp_path, heart_csv, prefect_server):  # noqa: F811
    out = tmp_path / "out"
    env = prefect_server.env(**{FLOW_TIMEOUT_ENV: "4", "XDG_CACHE_HOME": str(tmp_path / "cache")})
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", HUNG_RUN, "run", "--source", str(heart_csv), "--output", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert time.monotonic() - start < 120
    assert done.returncode == 1, done.stderr[-3000:]
    said = " ".join(done.stderr.split())
    assert f"error: the run did not finish within its timeout (4s) and was stopped; set {FLOW_TIMEOUT_ENV}" in said
    assert "Traceback" not in done.stderr
    assert not (out / LOCK).exists()  # the next run is not refused
    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}), get_client(sync_client=True) as client:
        (run,) = [r for r in client.read_flow_runs() if r.parameters["params"]["output"] == str(out)]
    assert run.state.type.value == "FAILED" and run.state.name == "TimedOut"


def test_the_flow_timeout_is_a_setting_with_a_default(monkeypatch):
    from flows.evaluate import evaluate
    from flows.generate import generate
    from flows.sample import sample

    monkeypatch.delenv(FLOW_TIMEOUT_ENV, raising=False)
    assert flow_timeout_seconds() == DEFAULT_FLOW_TIMEOUT_SECONDS == 86_400
    assert generate.timeout_seconds == evaluate.timeout_seconds == sample.timeout_seconds == 86_400
    monkeypatch.setenv(FLOW_TIMEOUT_ENV, " 5400 ")
    assert flow_timeout_seconds() == 5400
    for bad in ("0", "-60", "soon", "inf", "nan"):
        monkeypatch.setenv(FLOW_TIMEOUT_ENV, bad)
        with pytest.raises(ConfigError, match=f"{FLOW_TIMEOUT_ENV}='{bad}': give the flow timeout as a positive"):
            flow_timeout_seconds()
