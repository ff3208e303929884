"""The main flow: extract -> schema -> train -> sample -> evaluate -> report."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.parameters import GenerateParameters
from tasks.evaluate import evaluate_synthetic, publish_results, release_synthetic
from tasks.extract import inspect_extract, load_settings
from tasks.sample import sample_synthetic
from tasks.train import train_model


@flow(name="generate", description="Train a synthesizer on a real extract and publish synthetic data.")
def generate(params: GenerateParameters) -> dict:
    output = Path(params.output)
    config = load_settings(params.config_path, params.overrides())
    extract = inspect_extract(params.source, config)
    model_dir = train_model(params.source, config, extract.schema, str(output / "model"))
    sampled = sample_synthetic(model_dir, str(output / "staging"), config.sampling, config.seed, extract.rows)
    metrics = evaluate_synthetic(params.source, config, model_dir, sampled)
    publish_results(metrics, str(output))
    release_synthetic(sampled, str(output / "synthetic"))
    return metrics
