"""The main flow: extract -> clean and validate (Dask, GX) -> train -> sample -> evaluate -> report -> manifest
-> the work folder of real-data intermediates deleted."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, runtime

from flows.parameters import GenerateParameters, flow_timeout_seconds
from synth.runs import OutputLock
from tasks.evaluate import evaluate_synthetic, publish_results, release_synthetic, run_outcome
from tasks.extract import load_settings
from tasks.io import upload_output, withdraw_run_manifest, write_run_manifest, write_sql_table
from tasks.preprocess import check_extract, fingerprint_source, open_run_folders, preprocess_extract, use_sql_secret
from tasks.sample import sample_synthetic
from tasks.train import train_model
from tasks.work import finish_work


@flow(name="generate", description="Train a synthesizer on a real extract and publish synthetic data.",
      timeout_seconds=flow_timeout_seconds())
def generate(params: GenerateParameters) -> dict:
    config = load_settings(params.config_path, params.overrides())
    use_sql_secret(params.sql_url_secret, config)
    fingerprint = fingerprint_source(params.source, config)
    run = open_run_folders(fingerprint, config, params.output, params.work_dir)
    output = Path(run.output)
    with OutputLock(output, owner=f"flow run {runtime.flow_run.name} ({runtime.flow_run.id})"):
        prepared = preprocess_extract(params.source, fingerprint, config, run.work, params.verbose)
        check_extract(prepared)
        withdraw_run_manifest(run)
        model_dir = train_model(prepared, config, str(output / "model"), run.work)
        sampled = sample_synthetic(model_dir, str(output / "staging"), config.sampling, config.seed, prepared.rows,
                                   prepared.clean_dir)
        metrics = evaluate_synthetic(prepared.clean_dir, config, model_dir, sampled, str(output))
        publish_results(metrics, str(output))
        released = release_synthetic(sampled, str(output / "synthetic"), metrics)  # None when the gate failed
        sql_table = params.sql_table if released else None  # nothing leaves for SQL when the gate fails
        sinks = write_sql_table(str(output / "synthetic"), sql_table, params.sql_mode, config, run.work.key)
        write_run_manifest(run, params.source, fingerprint, prepared, model_dir, metrics, sinks)
        upload_output(run)
        finish_work(run, config.keep_work)  # only a completed run gets here: a failed one keeps it to resume
    return run_outcome(metrics)  # Failed when the release gate refused the data
