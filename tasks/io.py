"""Sinks: the synthetic table into SQL, the outputs to a remote URI, and the run's manifest."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from prefect import get_run_logger, runtime, task
from prefect.artifacts import create_link_artifact
from prefect.cache_policies import NO_CACHE

from synth.artifact import read_json
from synth.config import PipelineConfig
from synth.io import sql
from synth.io.uri import upload_folder
from synth.manifest import build_manifest, withdraw_manifest, write_manifest
from synth.preprocess import Prepared
from synth.sampling import model_fingerprint
from tasks.preprocess import IO_RETRIES, RunFolders
from tasks.user_errors import retry_unless_user_error


REPLACED_ON_UPLOAD = ("synthetic", "model")  # written whole by each run: an earlier run's files must go


@task(name="write-sql-table", cache_policy=NO_CACHE, **IO_RETRIES)
def write_sql_table(
    synthetic_dir: str, table: str | None, mode: str, config: PipelineConfig, release: str | None = None
) -> list[dict]:
    """Write the synthetic parts to ``table`` (one transaction); nothing when no table is named.

    In ``append`` mode ``release`` (the run key) is recorded in the database's ledger with
    the rows, in the same transaction: a rerun of a release already appended (a retried or
    re-triggered run) appends nothing.
    """
    if not table:
        return []
    engine = sql.engine_from_env(config.source.sql_url_env)
    try:
        parts = sorted(Path(synthetic_dir).glob("part-*.parquet"))
        rows = sql.write_table(engine, table, (pq.read_table(p) for p in parts), mode=mode, release=release,
                               run_id=str(runtime.flow_run.id or ""))
    finally:
        engine.dispose()
    sink = {"kind": "sql", "table": table, "mode": mode, "rows": rows}
    if mode == "append" and release:
        sink["release"] = release
    if mode == "append" and release and rows == 0:
        get_run_logger().info(f"release {release} was already appended to SQL table {table}: nothing appended again "
                              f"(ledger {sql.LEDGER})")
    else:
        get_run_logger().info(f"wrote {rows:,} synthetic rows to SQL table {table} ({mode})")
    return [sink]


@task(name="write-manifest", cache_policy=NO_CACHE, retries=2,
      retry_delay_seconds=[2, 10], retry_condition_fn=retry_unless_user_error)
def write_run_manifest(
    run: RunFolders,
    source: str,
    fingerprint: str,
    prepared: Prepared,
    model_dir: str,
    metrics: dict,
    sinks: list[dict],
) -> str:
    """``manifest.json`` beside the outputs, written last: the outputs are complete when it exists."""
    privacy = read_json(Path(model_dir) / "privacy.json")
    training = read_json(Path(model_dir) / "training.json")
    manifest = build_manifest(
        run.output,
        run={
            "id": str(runtime.flow_run.id),
            "name": runtime.flow_run.name,
            "flow": runtime.flow_run.flow_name,
            "deployment": runtime.deployment.name,
            "ui_url": runtime.flow_run.ui_url,
        },
        source={"uri": source, "fingerprint": fingerprint},
        schema=prepared.to_dict()["schema"],
        rows={
            "real": prepared.rows,
            "training": prepared.train_rows,
            "holdout": prepared.holdout_rows,
            "trained_on": training.get("rows"),
            "synthetic": metrics.get("rows"),
        },
        model={
            "name": read_json(Path(model_dir) / "model.json").get("name"),
            "fingerprint": model_fingerprint(model_dir),
            "epochs_run": training.get("epochs_run"),
            "device": training.get("device"),
        },
        privacy={
            "enabled": privacy.get("enabled"),
            "epsilon": privacy.get("epsilon_spent"),
            "epsilon_target": privacy.get("epsilon_target"),
            "delta": privacy.get("delta"),
            "unit": privacy.get("unit"),
        },
        gate={
            "extract_validation": {
                "success": prepared.gate.success,
                "expectations": prepared.gate.expectations,
                "partitions_validated": prepared.gate.partitions_validated,
                "failures": len(prepared.gate.failures),
            },
            "release": metrics.get("gate"),
        },
        sinks=sinks + ([{"kind": "uri", "uri": run.remote}] if run.remote else []),
    )
    path = write_manifest(run.output, manifest)
    report = Path(run.output) / "report.html"
    if report.is_file() and not run.remote:
        create_link_artifact(key="synthetic-report", link=report.resolve().as_uri(), link_text="report.html")
    get_run_logger().info(f"manifest: {path} ({len(manifest['files'])} files)")
    return str(path)


@task(name="withdraw-manifest", cache_policy=NO_CACHE)
def withdraw_run_manifest(run: RunFolders) -> None:
    """Delete the folder's old ``manifest.json`` before this run changes any output.

    It would vouch for files this run is about to replace: until the new manifest is
    written, the folder reads as incomplete, as it is.
    """
    if withdraw_manifest(run.output):
        get_run_logger().info(f"withdrew the manifest of an earlier run from {run.output}: the outputs change now")


@task(name="upload-output", cache_policy=NO_CACHE, **IO_RETRIES)
def upload_output(run: RunFolders) -> str:
    """Copy the local outputs to the remote output URI, the manifest last; nothing for local outputs.

    An earlier run's remote ``synthetic/`` and ``model/`` files that this run did not write
    are deleted first: when this run's gate failed, its data are not released remotely and
    the last run's are withdrawn, as in a local output folder.
    """
    if not run.remote:
        return run.output
    written = upload_folder(run.output, run.remote, replace=REPLACED_ON_UPLOAD)
    get_run_logger().info(f"uploaded {len(written)} files to {run.remote}")
    return run.remote
