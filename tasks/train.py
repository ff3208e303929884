"""The training task. No retries: a retried DP run would spend its privacy budget twice."""

from __future__ import annotations

from prefect import get_run_logger, task

from synth.config import PipelineConfig
from synth.holdout import split_holdout
from synth.io.sources import read_table
from synth.models import get_synthesizer
from synth.schema import Schema
from tasks.progress import EpochProgress


@task(name="train-model", retries=0)
def train_model(source: str, config: PipelineConfig, schema: Schema, model_dir: str) -> str:
    """Fit the transforms and the synthesizer on the training split; save the model folder."""
    table = read_table(source, config, columns=schema.names)
    table, _ = split_holdout(table, schema, config.evaluation.holdout_fraction, config.seed)
    synthesizer = get_synthesizer(config.model.name)(config)
    synthesizer.fit(table, schema, on_epoch=EpochProgress(config.model.epochs))
    synthesizer.save(model_dir)
    report = synthesizer.training_
    privacy = report.privacy
    spent = f"; epsilon spent {privacy.epsilon_spent:.3f} (delta {privacy.delta:.2e})" if privacy.enabled else ""
    get_run_logger().info(
        f"trained on {report.device}: {report.epochs_run} epochs in {report.seconds:.1f}s "
        f"({report.rows_per_second:,.0f} rows/s){spent}"
    )
    return model_dir
