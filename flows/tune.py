"""Tune the model's settings: extract -> clean and validate -> split the training rows -> trials in
parallel batches (Optuna ask/tell) -> tuned.yaml + trials.csv -> the work folder deleted."""

from __future__ import annotations

from prefect import flow, runtime, unmapped

from flows.parameters import flow_timeout_seconds
from flows.parameters import TuneParameters
from synth.runs import OutputLock
from synth.tuning import Tuner
from tasks.extract import load_settings
from tasks.preprocess import check_extract, fingerprint_source, open_run_folders, preprocess_extract
from tasks.tune import run_trial_task, split_for_tuning, write_tuned_config
from tasks.work import finish_work


@flow(name="tune", description="Choose the model's settings on validation quality and a privacy signal.",
      timeout_seconds=flow_timeout_seconds())
def tune(params: TuneParameters) -> dict:
    config = load_settings(params.config_path, params.overrides())
    fingerprint = fingerprint_source(params.source, config)
    run = open_run_folders(fingerprint, config, params.output, params.work_dir)
    with OutputLock(run.output, owner=f"flow run {runtime.flow_run.name} ({runtime.flow_run.id})"):
        prepared = preprocess_extract(params.source, fingerprint, config, run.work)
        check_extract(prepared)
        files = split_for_tuning(prepared, config, run.work)
        tuner = Tuner(config, params.trials, params.timeout_seconds)
        while specs := tuner.ask(params.workers):  # one batch runs in parallel, then the study learns from it
            tuner.tell(run_trial_task.map(specs, unmapped(files), unmapped(config)).result())
        result = tuner.result(params.min_privacy_ratio)
        written = write_tuned_config(result, config, run.output, params.source)
        finish_work(run, config.keep_work)
    return {"chosen": result.chosen.settings, "note": result.note, "trials": len(result.trials), **written}
