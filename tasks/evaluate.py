"""Evaluation and publishing tasks: metrics.json, report.html, Prefect artifacts, the gated release."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.states import Failed, State

from synth.artifact import read_json
from synth.config import PipelineConfig
from synth.errors import ConfigError
from synth.evaluation import evaluate
from synth.evaluation.gate import releases
from synth.evaluation.samples import sample_indices
from synth.evaluation.tables import conform
from synth.holdout import split_holdout
from synth.io.atomic import replace_dir, write_json_atomic
from synth.io.scan import TableScan, open_table, read_sample
from synth.io.sources import read_table
from synth.preprocess import holdout_sample, training_sample
from synth.report.html import write_report
from synth.report.profile import write_profile
from synth.sampling import SampleResult
from synth.schema import Schema, infer_schema
from tasks.user_errors import retry_unless_user_error

HEADLINE = [
    "rows", "quality_score", "validity", "correlation_similarity", "pmse", "pmse_ratio", "exact_collisions",
    "holdout_exact_collisions", "dcr_median", "dcr_holdout_median", "nndr_median", "mia_auc", "utility_ratio",
    "epsilon",
]
PROFILE_ROWS = 20_000


@task(name="evaluate-synthetic")
def evaluate_synthetic(
    source: str, config: PipelineConfig, model_dir: str, sampled: SampleResult, output_dir: str | None = None
) -> dict:
    """Metrics and gate verdict for the synthetic parts against the real data, plus the run's facts.

    ``source`` is the clean dataset written by preprocessing (``train/`` and ``holdout/``),
    or a raw extract, split here exactly as training split it. The real rows compared are
    the ones the model was trained on (its seeded training sample), so distances and
    membership attacks measure against true members, and a seeded sample of at most
    ``evaluation.holdout_rows`` holdout rows. The synthetic parts are streamed, never read
    whole: memory follows these sample sizes, not the synthetic rows.
    """
    schema = Schema.from_json((Path(model_dir) / "schema.json").read_text())
    if (Path(source) / "train").is_dir():
        train = training_sample(source, config.model.max_training_rows, config.seed, columns=schema.names)
        holdout = holdout_sample(source, config.evaluation.holdout_rows, config.seed, columns=schema.names)
    else:
        real = read_table(source, config, columns=schema.names)
        train, holdout = split_holdout(real, schema, config.evaluation.holdout_fraction, config.seed)
    metrics = evaluate(train, sampled.folder, schema, config.evaluation, seed=config.seed, holdout=holdout,
                       gate=config.gate, constraints=config.constraints)
    metrics |= _training_facts(model_dir) | {"sample_seconds": sampled.seconds}
    if config.evaluation.profile and output_dir:
        metrics["profile_path"] = _profile(train, sampled.folder, schema, config, output_dir)
    _log(metrics)
    return metrics


@task(name="evaluate-tables")
def evaluate_tables(
    real_path: str,
    synthetic_path: str,
    config: PipelineConfig,
    output_dir: str,
    holdout_path: str | None = None,
    model_dir: str | None = None,
) -> dict:
    """Metrics and gate verdict for any pair of tables (synthetic data made elsewhere too).

    The schema is the model's (``model_dir``) or inferred from the real table with the
    config, as ``synth run`` infers it: the entity key is the config's ``entity_key``
    (``--entity-key``) or the repeating identifier inference finds (``entity_key_source``
    says which). Without a holdout, a seeded split of the real table stands in (stated in
    ``holdout_source``) and the gate cannot pass.

    The tables may be paths or fsspec URIs (``s3://``, ``abfs://``...). The synthetic table is
    streamed (Parquet; a CSV is read whole); the real table is read whole up to
    ``model.max_training_rows`` rows and the holdout up to ``evaluation.holdout_rows``, beyond
    that as seeded samples of whole patients (name the entity key for such tables, or it is
    inferred from their first rows).

    Raises:
        ConfigError: the entity key given differs from the model's.
    """
    if model_dir:
        schema = Schema.from_json((Path(model_dir) / "schema.json").read_text())
        if config.entity_key is not None and config.entity_key != schema.entity_key:
            raise ConfigError(
                f"entity key {config.entity_key!r} differs from the model's ({schema.entity_key!r}, in "
                f"{Path(model_dir) / 'schema.json'}); leave --entity-key out to use the model's"
            )
        real = read_sample(real_path, config, config.model.max_training_rows, config.seed, schema.entity_key,
                           columns=schema.names)
        key_source = "the model's schema"
    else:
        key = config.entity_key or _key_from_first_rows(real_path, config)
        real = read_sample(real_path, config, config.model.max_training_rows, config.seed, key)
        schema = infer_schema(real, config)
        key_source = "declared (entity_key, --entity-key)" if config.entity_key else "inferred from the real table"
    get_run_logger().info(
        f"entity key: {schema.entity_key} ({key_source})" if schema.entity_key else
        "no entity key: every row is taken for a different person; if people have several rows, "
        "name their identifier (--entity-key) or the attacks and pMSE will be misled"
    )
    synthetic = open_table(synthetic_path, config)
    holdout = (read_sample(holdout_path, config, config.evaluation.holdout_rows, config.seed, schema.entity_key)
               if holdout_path else None)
    metrics = evaluate(real, synthetic, schema, config.evaluation, seed=config.seed, holdout=holdout, gate=config.gate,
                       constraints=config.constraints)
    metrics["entity_key_source"] = key_source if schema.entity_key else None
    if model_dir:
        metrics |= _training_facts(model_dir)
    else:
        metrics |= {"epsilon": None, "epsilon_target": None, "delta": None, "privacy_unit": None}
    if config.evaluation.profile:
        metrics["profile_path"] = _profile(real, synthetic, schema, config, output_dir)
    _log(metrics)
    return metrics


@task(name="publish-results", retries=2,
      retry_delay_seconds=[2, 10], retry_condition_fn=retry_unless_user_error)
def publish_results(metrics: dict, output_dir: str) -> str:
    """Write metrics.json and report.html atomically; publish the summary and metrics artifacts."""
    output = Path(output_dir)
    write_json_atomic(output / "metrics.json", {k: v for k, v in metrics.items() if k != "figures"})
    report = write_report(metrics, output / "report.html")
    gate = metrics["gate"]
    create_table_artifact(
        key="synthetic-metrics",
        table=[{"metric": k, "value": metrics.get(k)} for k in HEADLINE]
        + [{"metric": f"gate: {c['name']}", "value": "pass" if c["passed"] else "FAIL"} for c in gate["checks"]],
        description="Headline metrics of the synthetic data and the release gate",
    )
    create_markdown_artifact(
        key="synthetic-summary",
        markdown="\n".join(
            ["# Synthetic data summary", "", f"**Release gate: {gate.get('summary', gate['verdict'].upper())}**", ""]
            + [f"- {reason}" for reason in gate["reasons"]]
            + ["", f"Report: `{report.resolve()}`", ""]
            + [f"- **{k}**: {metrics.get(k)}" for k in HEADLINE]
        ),
        description="Summary of the synthetic data evaluation",
    )
    return str(report)


@task(name="release-synthetic", retries=2,
      retry_delay_seconds=[2, 10], retry_condition_fn=retry_unless_user_error)
def release_synthetic(sampled: SampleResult, release_dir: str, metrics: dict) -> str | None:
    """Move the staged parts to the release folder in one rename, only if the gate passed
    (or the config says not to enforce it: public data only).

    On a failing gate the staged parts are deleted, and so is any earlier release in
    ``release_dir``: the folder's metrics.json and report.html now describe data that
    failed, and stale parts beside them would read as approved.
    """
    logger = get_run_logger()
    gate = metrics["gate"]
    if releases(gate):
        replace_dir(sampled.folder, release_dir)
        if gate["verdict"] == "pass":
            logger.info(f"gate {gate.get('summary', 'PASS')}: released {sampled.rows:,} rows to {release_dir}")
        else:
            logger.warning(f"gate FAILED but not enforced (gate.enforce: false; reason: {gate.get('reason')}): "
                           f"released {sampled.rows:,} rows to {release_dir}: " + "; ".join(gate["reasons"]))
        return release_dir
    shutil.rmtree(sampled.folder, ignore_errors=True)
    shutil.rmtree(release_dir, ignore_errors=True)
    logger.error("gate FAILED, synthetic data not released: " + "; ".join(gate["reasons"]))
    return None


def _key_from_first_rows(path: str, config: PipelineConfig) -> str | None:
    """The entity key inference finds in a table's first ``model.max_training_rows`` rows, when the
    table is larger (a row sample would split patients and hide the key); ``None`` otherwise."""
    scan = open_table(path, config)
    if scan.num_rows <= config.model.max_training_rows:
        return None
    return infer_schema(scan.take(np.arange(config.model.max_training_rows)), config).entity_key


GATE_FAILED = "Release gate failed"


class ReleaseRefused(Exception):
    """The release gate refused the synthetic data; ``metrics`` holds the verdict and every number."""

    def __init__(self, metrics: dict):
        super().__init__(f"{GATE_FAILED}: " + "; ".join(metrics["gate"]["reasons"]))
        self.metrics = metrics

    def __reduce__(self):  # results are pickled: rebuild from the metrics, not from the message
        return type(self), (self.metrics,)


def run_outcome(metrics: dict) -> dict | State:
    """The flow run's final state: Completed with the metrics, or Failed when the gate refused the data.

    A refused release is a failure to whoever watches the runs: nothing was delivered, and
    someone has to look. So its state is an ordinary ``Failed`` (red in the UI, counted by
    every failure filter, the event ``prefect.flow-run.Failed`` that alerting automations
    match) whose message is ``Release gate failed: <each reason>``: an automation for gate
    failures alone adds ``match: {"prefect.state-message": "Release gate failed*"}``. A
    ``Completed`` state with another name would look like success, and a ``Failed`` type
    with another name would escape the automations that match ``Failed``. The run's result
    is a :class:`ReleaseRefused` carrying the metrics (the CLI reads them from it to print
    the reasons and exit with status 3). A verdict that is not enforced completes.
    """
    if releases(metrics["gate"]):
        return metrics
    refused = ReleaseRefused(metrics)
    return Failed(message=str(refused), data=refused)


def _training_facts(model_dir: str) -> dict:
    training = read_json(Path(model_dir) / "training.json")
    privacy = training["privacy"]
    return {
        "epsilon": privacy["epsilon_spent"] if privacy["enabled"] else None,
        "epsilon_target": privacy["epsilon_target"],
        "delta": privacy["delta"],
        "privacy_unit": privacy["unit"] if privacy["enabled"] else None,
        "epsilon_cap_reached": privacy.get("stopped_at_cap", False) if privacy["enabled"] else None,
        # A DP model folder leaves out the wall time and rows/s (they follow the exact row count).
        "train_seconds": training.get("seconds"),
        "train_rows_per_second": training.get("rows_per_second"),
        "epochs_run": training["epochs_run"],
        "device": training["device"],
    }


def _profile(real, synthetic, schema: Schema, config: PipelineConfig, output_dir: str) -> str:
    rng = np.random.default_rng([config.seed, 0x9F])
    frames = []
    for table, what in ((real, "real"), (synthetic, "synthetic")):
        scan = table if isinstance(table, TableScan) else TableScan(table)
        rows = sample_indices(scan.num_rows, PROFILE_ROWS, rng)
        frames.append(conform(scan.take(rows), schema, what).to_pandas())
    return str(write_profile(frames[0], frames[1], Path(output_dir) / "profile.html"))


def _log(metrics: dict) -> None:
    gate = metrics["gate"]
    get_run_logger().info(
        f"quality {metrics['quality_score']:.3f}; exact copies {metrics['exact_collisions']}; "
        f"DCR median {metrics['dcr_median']:.4f} (holdout {metrics['dcr_holdout_median']:.4f}); "
        f"closeness tail {(metrics.get('distance') or {}).get('dcr_tail_share', float('nan')):.3f}; "
        f"MIA AUC {metrics['mia_auc']:.3f}; gate {gate.get('summary', gate['verdict'].upper())}"
        + (f": {'; '.join(gate['reasons'])}" if gate["reasons"] else "")
    )
