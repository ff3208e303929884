"""The relational flow: tables -> key gate (GX, per table) -> patients held out -> fit -> sample -> evaluate
-> release -> manifest -> the work folder of real-data intermediates deleted."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, runtime

from flows.parameters import RelationalParameters, flow_timeout_seconds
from synth.runs import OutputLock
from tasks.evaluate import release_synthetic, run_outcome
from tasks.extract import load_settings
from tasks.io import withdraw_run_manifest
from tasks.preprocess import open_run_folders, use_sql_secret
from tasks.relational import (
    check_keys, evaluate_relational_run, fingerprint_tables, hold_out_patients, read_extract_tables, sample_relational,
    train_relational_model, write_relational_manifest, write_sql_tables,
)
from tasks.work import finish_work


@flow(name="generate-relational", description="Train on a relational extract (related tables) and publish "
      "synthetic tables with their keys intact.", timeout_seconds=flow_timeout_seconds())
def generate_relational(params: RelationalParameters) -> dict:
    config = load_settings(params.config_path, params.overrides())
    use_sql_secret(params.sql_url_secret, config)
    fingerprint = fingerprint_tables(config)
    run = open_run_folders(fingerprint, config, params.output, params.work_dir)
    output = Path(run.output)
    with OutputLock(output, owner=f"flow run {runtime.flow_run.name} ({runtime.flow_run.id})"):
        real = read_extract_tables(config, run.work)
        expectations = check_keys(real)
        withdraw_run_manifest(run)
        held = hold_out_patients(real, config, run.work)  # their rows are never trained on
        model_dir = train_relational_model(held.training, config, str(output / "model"))
        sampled = sample_relational(model_dir, str(output / "staging"), config, real)
        metrics = evaluate_relational_run(real, held, model_dir, sampled, config, str(output))
        released = release_synthetic(sampled, str(output / "synthetic"), metrics)  # None when the gate failed
        sinks = write_sql_tables(released, params.sql_prefix, config, real)  # nothing leaves when the gate failed
        write_relational_manifest(run, config, fingerprint, real, expectations, model_dir, metrics, sinks)
        finish_work(run, config.keep_work)  # only a completed run gets here: a failed one keeps it to resume
    return run_outcome(metrics)  # Failed when the release gate refused the data
