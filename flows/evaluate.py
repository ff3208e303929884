"""Judge synthetic data against real data: metrics, report and the release gate, no training."""

from __future__ import annotations

from prefect import flow, runtime

from flows.parameters import EvaluateParameters, flow_timeout_seconds
from synth.runs import OutputLock
from tasks.evaluate import evaluate_tables, publish_results, run_outcome
from tasks.extract import load_settings


@flow(name="evaluate", description="Evaluate a synthetic table against a real one and apply the release gate.",
      timeout_seconds=flow_timeout_seconds())
def evaluate(params: EvaluateParameters) -> dict:
    config = load_settings(params.config_path, params.overrides())
    with OutputLock(params.output, owner=f"flow run {runtime.flow_run.name} ({runtime.flow_run.id})"):
        metrics = evaluate_tables(params.real, params.synthetic, config, params.output, params.holdout, params.model)
        publish_results(metrics, params.output)
    return run_outcome(metrics)  # Failed when the release gate refused the data
