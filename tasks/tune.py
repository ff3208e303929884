"""Tuning tasks: carve the validation rows once, run one trial each, write the chosen config."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow.parquet as pq
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from synth.config import PipelineConfig
from synth.io.atomic import write_parquet_atomic
from synth.preprocess import Prepared, training_sample
from synth.runs import WorkDir
from synth.schema import Schema
from synth.tuning import TrialResult, TrialSpec, TuningData, TuningResult, run_trial, validation_split, write_tuning
from synth.work import make_private


@dataclass(frozen=True)
class TuningFiles:
    """The fit and validation rows as Parquet files in the work folder (tasks pass paths, not tables)."""

    fit: str
    validation: str
    schema: Schema

    def load(self) -> TuningData:
        return TuningData(fit=pq.read_table(self.fit), validation=pq.read_table(self.validation), schema=self.schema)


@task(name="split-for-tuning", cache_policy=NO_CACHE)
def split_for_tuning(prepared: Prepared, config: PipelineConfig, work: WorkDir) -> TuningFiles:
    """The training sample split into fit and validation rows (the holdout is not read)."""
    table = training_sample(prepared.clean_dir, config.model.max_training_rows, config.seed, prepared.schema.names)
    data = validation_split(table, prepared.schema, config.seed)
    folder = work.sub("tuning")
    fit = write_parquet_atomic(folder / "fit.parquet", data.fit)
    validation = write_parquet_atomic(folder / "validation.parquet", data.validation)
    make_private(work.path)
    get_run_logger().info(
        f"tuning on {data.fit.num_rows:,} fit rows, judged on {data.validation.num_rows:,} validation rows "
        f"(a split of the training rows; the {prepared.holdout_rows:,} holdout rows are left unseen)"
    )
    return TuningFiles(fit=str(fit), validation=str(validation), schema=prepared.schema)


@task(name="run-trial", retries=0, cache_policy=NO_CACHE)
def run_trial_task(spec: TrialSpec, files: TuningFiles, config: PipelineConfig) -> TrialResult:
    """Fit, sample and score one trial's settings."""
    result = run_trial(spec, files.load(), config)
    outcome = (f"quality {result.quality:.3f}, privacy ratio {result.privacy_ratio:.3f}" if result.complete
               else f"failed: {result.error}")
    get_run_logger().info(f"trial {spec.number} {spec.settings}: {outcome} ({result.seconds:.1f}s)")
    return result


@task(name="write-tuned-config", cache_policy=NO_CACHE)
def write_tuned_config(result: TuningResult, config: PipelineConfig, output: str, source: str) -> dict:
    """``tuned.yaml`` and ``trials.csv`` in the output folder."""
    written = write_tuning(result, config, output, source)
    get_run_logger().info(f"{result.note}; config: {written['tuned_yaml']}")
    return written
