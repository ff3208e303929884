"""Comparison tasks: plan the variants, fit-sample-evaluate one variant (mapped), write the table and page."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from synth.compare import Variant, epsilon_variants, markdown_table, model_variants, run_variant, write_comparison
from synth.config import PipelineConfig
from synth.errors import SynthError
from synth.manifest import code_version
from synth.preprocess import Prepared
from synth.runs import WorkDir, training_key
from synth.schema import Schema
from synth.work import make_private
from tasks.progress import EpochProgress
from tasks.user_errors import retry_unless_user_error


@task(name="plan-models", cache_policy=NO_CACHE)
def plan_models(models: list[str] | None, schema: Schema) -> list[Variant]:
    """One variant per model (default: the VAE suited to the extract and every other registered model)."""
    variants = model_variants(models, schema)
    get_run_logger().info(f"comparing {len(variants)} synthesizers: {', '.join(v.label for v in variants)}")
    return variants


@task(name="plan-sweep", cache_policy=NO_CACHE)
def plan_sweep(epsilons: list[float | None]) -> list[Variant]:
    """One variant of the model ``auto`` picks per privacy budget, ε = ∞ last."""
    variants = epsilon_variants(epsilons)
    get_run_logger().info(f"sweeping {len(variants)} privacy budgets: {', '.join(v.label for v in variants)}")
    return variants


# Never retried and not cached, as train-model: a retry would train again, and under DP spend ε again.
@task(name="run-variant", task_run_name="run-variant-{variant.slug}", retries=0, cache_policy=NO_CACHE)
def run_one_variant(
    variant: Variant, prepared: Prepared, config: PipelineConfig, output: str, work: WorkDir, rows: int | None = None
) -> dict:
    """Fit, sample and evaluate one variant on the shared split; its row of the comparison."""
    logger = get_run_logger()
    options = {}
    try:  # an interrupted fit resumes from its checkpoints, the DP releases beside them (never spent twice)
        settings = variant.config(config)
        key = training_key(prepared.version, settings, code_version())
        options = {"on_epoch": EpochProgress(settings.model.planned_epochs),
                   "checkpoint_dir": str(work.sub("checkpoints") / key)}
    except SynthError:
        pass  # run_variant reports the bad settings in the row
    row = run_variant(variant, prepared, config, output, rows, **options)
    make_private(work.path)  # the checkpoints hold weights fitted to real data
    if row["error"]:
        logger.warning(f"{variant.label}: did not run: {row['error']}")
    else:
        logger.info(
            f"{variant.label} ({row['model']}): quality {row['quality_score']:.3f}; MIA AUC {row['mia_auc']:.3f}; "
            f"gate {row['gate']}; fit {row['fit_seconds']:.1f}s, sample {row['sample_seconds']:.1f}s"
        )
    return row


@task(name="write-comparison", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=retry_unless_user_error)
def write_comparison_outputs(rows: list[dict], output: str, title: str, sweep: bool = False) -> list[dict]:
    """compare.csv, compare.md and compare.html (atomically); the table as a Prefect artifact. Returns the rows."""
    written = write_comparison(rows, output, title, sweep)
    create_markdown_artifact(
        key="synth-sweep" if sweep else "synth-comparison",
        markdown=f"# {title}\n\n{markdown_table(rows)}\nPage: `{written['html'].resolve()}`\n",
        description=title,
    )
    get_run_logger().info(f"comparison of {len(rows)} variants: {written['md']}, {written['csv']}, {written['html']}")
    return rows
