"""Judge synthetic data against real data: metrics, report and the release gate, no training."""

from __future__ import annotations

from prefect import flow

from flows.parameters import EvaluateParameters
from tasks.evaluate import evaluate_tables, publish_results
from tasks.extract import load_settings


@flow(name="evaluate", description="Evaluate a synthetic table against a real one and apply the release gate.")
def evaluate(params: EvaluateParameters) -> dict:
    config = load_settings(params.config_path, params.overrides())
    metrics = evaluate_tables(params.real, params.synthetic, config, params.output, params.holdout, params.model)
    publish_results(metrics, params.output)
    return metrics
