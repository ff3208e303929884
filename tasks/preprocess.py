"""Preprocessing tasks: fingerprint the source, prepare the work folder, clean on Dask, gate."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from prefect import get_run_logger, runtime, task
from prefect.artifacts import create_markdown_artifact
from prefect.blocks.system import Secret
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from synth.config import PipelineConfig
from synth.errors import SynthError
from synth.expectations import GateResult
from synth.io.outputs import check_output
from synth.io.uri import is_remote, local_path
from synth.preprocess import Prepared, preprocess
from synth.preprocess.partitions import source_fingerprint
from synth.runs import WorkDir, default_work_root, open_work_dir, run_key
from synth.work import check_outside, make_private
from tasks.caching import DATA_CONFIG_CODE
from tasks.user_errors import retry_unless_user_error

IO_RETRIES = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_unless_user_error,
}


class ValidationFailed(SynthError):
    """The extract failed its expectation suite; training did not start."""


@dataclass(frozen=True)
class RunFolders:
    """The run's work folder (real data) and the local folder its outputs are written to."""

    work: WorkDir
    output: str
    remote: str | None = None  # the output URI the local folder is uploaded to, if remote


@task(name="fingerprint-source", cache_policy=NO_CACHE, **IO_RETRIES)
def fingerprint_source(source: str, config: PipelineConfig) -> str:
    """A hash that changes when the extract changes (never cached: it is how change is seen)."""
    return source_fingerprint(source, config)


@task(name="use-sql-secret", cache_policy=NO_CACHE, **IO_RETRIES)
def use_sql_secret(secret: str | None, config: PipelineConfig) -> None:
    """Put the SQL URL held in a Prefect Secret block into this run's environment; nothing without one.

    Read at run time, so the URL is never stored in a deployment, a parameter or a file;
    the flow run's own process (and the Dask workers it starts) see it.
    """
    if secret:
        os.environ[config.source.sql_url_env] = str(Secret.load(secret).get())


@task(name="open-run-folders", cache_policy=NO_CACHE)
def open_run_folders(fingerprint: str, config: PipelineConfig, output: str, work_root: str | None) -> RunFolders:
    """The work folder keyed by (data, config, output); a local staging folder for remote outputs.

    ``{month}`` in ``output`` becomes the run's scheduled month, so a monthly deployment
    writes each month's release beside the last.
    """
    scheduled = runtime.flow_run.scheduled_start_time or datetime.now(UTC)
    output = output.replace("{month}", scheduled.strftime("%Y-%m"))
    if not is_remote(output):
        check_outside(work_root or default_work_root(), local_path(output))
    check_output(output)
    work = open_work_dir(run_key(fingerprint, config, output), work_root, output=output)
    local = str(Path(work.path) / "output") if is_remote(output) else str(local_path(output))
    get_run_logger().info(f"work folder {work.path}; outputs to {output}")
    return RunFolders(work=work, output=local, remote=output if is_remote(output) else None)


@task(
    name="preprocess-extract",
    cache_policy=DATA_CONFIG_CODE,
    persist_result=True,
    retries=2,  # a retry resumes: partitions already clean are skipped
    retry_delay_seconds=exponential_backoff(backoff_factor=10),
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_unless_user_error,
)
def preprocess_extract(
    source: str, fingerprint: str, config: PipelineConfig, work: WorkDir, verbose: bool = False
) -> Prepared:
    """Clean, validate and split the extract on Dask into the work folder (partitions resume).

    ``verbose`` lets the Dask cluster's own INFO lines into the log (it is not part of the cache key).
    """
    logger = get_run_logger()
    prepared = preprocess(source, config, work.path, log=logger.info, verbose=verbose)
    make_private(work.path)  # Polars, PyArrow and Dask workers created files under the process umask
    logger.info(
        f"clean dataset: {prepared.rows:,} rows ({prepared.train_rows:,} training, {prepared.holdout_rows:,} holdout) "
        f"in {prepared.partitions} partitions, {prepared.seconds:.1f}s "
        f"({prepared.rows / max(prepared.seconds, 1e-9):,.0f} rows/s)"
    )
    return prepared


@task(name="check-extract", cache_policy=NO_CACHE)
def check_extract(prepared: Prepared) -> GateResult:
    """The GX gate: publish the validation report; stop the flow when the extract fails it."""
    gate = prepared.gate
    create_markdown_artifact(
        key="extract-validation",
        markdown=gate.markdown()
        + f"\nFull GX results (they quote real values): `{Path(prepared.clean_dir) / '_validation'}`\n",
        description="Great Expectations gate on the real extract (counts only)",
    )
    if not gate.success:
        raise ValidationFailed(
            f"the extract failed validation, so nothing was trained: {gate.summary()}. Report: {prepared.report_path}"
        )
    get_run_logger().info(
        f"extract validation passed ({gate.expectations} expectations, {gate.partitions_validated} partitions)"
    )
    return gate
