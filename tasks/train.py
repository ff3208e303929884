"""The training task: on a bounded sample of the clean training split, resumable, never retried.

No retries and no Prefect cache on this task. A retry would start training again from
scratch, and with differential privacy every new training spends the budget ε again. A
re-triggered run instead *reuses* the model a finished training of the same clean data,
config and code wrote (the work folder's training record), and an interrupted training
*resumes* from its last epoch checkpoint and the DP releases saved beside it, the
accountant's state carried over and an epoch cut short charged, so ε is never spent
twice or unaccounted (see :mod:`synth.models.training`).
"""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from synth.config import PipelineConfig
from synth.manifest import code_version
from synth.models import synthesizer_for
from synth.preprocess import Prepared, training_sample
from synth.runs import WorkDir, finished_training, record_training, training_key
from synth.sampling import model_fingerprint
from synth.work import make_private
from tasks.progress import EpochProgress


@task(name="train-model", retries=0, cache_policy=NO_CACHE)
def train_model(prepared: Prepared, config: PipelineConfig, model_dir: str, work: WorkDir) -> str:
    """Fit the transforms and the synthesizer on the training split; save the model folder."""
    logger = get_run_logger()
    key = training_key(prepared.version, config, code_version())
    existing = model_fingerprint(model_dir) if Path(model_dir).is_dir() else None
    if finished_training(work, key, model_dir, existing):
        logger.info(f"reusing the model already trained on this data and config: {model_dir} (no ε spent)")
        return model_dir

    schema = prepared.schema
    table = training_sample(prepared.clean_dir, config.model.max_training_rows, config.seed, schema.names)
    if table.num_rows < prepared.train_rows:
        logger.info(
            f"training on a seeded sample of {table.num_rows:,} of {prepared.train_rows:,} rows "
            "(model.max_training_rows)"
        )
    synthesizer = synthesizer_for(config, schema)
    synthesizer.fit(
        table,
        schema,
        on_epoch=EpochProgress(config.model.planned_epochs),
        checkpoint_dir=str(work.sub("checkpoints") / key),
    )
    synthesizer.save(model_dir)
    record_training(work, key, model_dir, model_fingerprint(model_dir))
    make_private(work.path)  # the checkpoints hold weights fitted to real data
    report = synthesizer.training_
    privacy = report.privacy
    spent = f"; epsilon spent {privacy.epsilon_spent:.3f} (delta {privacy.delta:.2e})" if privacy.enabled else ""
    if privacy.stopped_at_cap:
        spent += f"; stopped early at the epsilon cap (privacy.max_epsilon = {privacy.epsilon_cap:g})"
    resumed = getattr(report, "resumed_from_epoch", 0)
    logger.info(
        f"trained on {report.device}: {report.epochs_run} epochs in {report.seconds:.1f}s "
        f"({report.rows_per_second:,.0f} rows/s){spent}{f'; resumed after epoch {resumed}' if resumed else ''}"
    )
    return model_dir
