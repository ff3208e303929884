"""Evaluation and publishing tasks: metrics.json, report.html and Prefect artifacts."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from synth.artifact import read_json
from synth.config import PipelineConfig
from synth.evaluation import evaluate
from synth.holdout import split_holdout
from synth.io.atomic import replace_dir, write_json_atomic
from synth.io.sources import read_table
from synth.report.html import write_report
from synth.sampling import SampleResult
from synth.schema import Schema


@task(name="evaluate-synthetic")
def evaluate_synthetic(source: str, config: PipelineConfig, model_dir: str, sampled: SampleResult) -> dict:
    """Metrics for the synthetic parts against the real extract, plus the run's facts."""
    schema = Schema.from_json((Path(model_dir) / "schema.json").read_text())
    real = read_table(source, config, columns=schema.names)
    train, holdout = split_holdout(real, schema, config.evaluation.holdout_fraction, config.seed)
    metrics = evaluate(train, sampled.folder, schema, config.evaluation, seed=config.seed, holdout=holdout)
    training = read_json(Path(model_dir) / "training.json")
    privacy = training["privacy"]
    metrics |= {
        "epsilon": privacy["epsilon_spent"] if privacy["enabled"] else None,
        "epsilon_target": privacy["epsilon_target"],
        "delta": privacy["delta"],
        "privacy_unit": privacy["unit"] if privacy["enabled"] else None,
        "train_seconds": training["seconds"],
        "train_rows_per_second": training["rows_per_second"],
        "epochs_run": training["epochs_run"],
        "device": training["device"],
        "sample_seconds": sampled.seconds,
    }
    get_run_logger().info(
        f"quality {metrics['quality_score']:.3f} (shapes {metrics['column_shapes']:.3f}, "
        f"pair trends {metrics['column_pair_trends']:.3f}); exact copies of real rows: {metrics['exact_collisions']}"
    )
    return metrics


@task(name="publish-results", retries=2, retry_delay_seconds=[2, 10])
def publish_results(metrics: dict, output_dir: str) -> str:
    """Write metrics.json and report.html atomically; publish summary artifacts."""
    output = Path(output_dir)
    write_json_atomic(output / "metrics.json", metrics)
    report = write_report(metrics, output / "report.html")
    headline = ["rows", "quality_score", "column_shapes", "column_pair_trends", "exact_collisions", "epsilon"]
    create_table_artifact(
        key="synthetic-metrics",
        table=[{"metric": k, "value": metrics.get(k)} for k in headline],
        description="Headline metrics of the synthetic data",
    )
    create_markdown_artifact(
        key="synthetic-summary",
        markdown="\n".join(
            ["# Synthetic data summary", "", f"Report: `{report.resolve()}`", ""]
            + [f"- **{k}**: {metrics.get(k)}" for k in headline]
        ),
        description="Summary of the synthetic data run",
    )
    return str(report)


@task(name="release-synthetic", retries=2, retry_delay_seconds=[2, 10])
def release_synthetic(sampled: SampleResult, release_dir: str) -> str:
    """Move the staged parts to the release folder in one rename."""
    replace_dir(sampled.folder, release_dir)
    get_run_logger().info(f"released {sampled.rows:,} rows to {release_dir}")
    return release_dir
