"""Synthesizers compared on one extract, and the DP VAE over privacy budgets: preprocess once, one task per variant.

Both flows clean and split the extract once, then map one task per variant over the
task runner (variants run side by side), and write one table and one page of plots.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, runtime, unmapped

from flows.parameters import CompareParameters, SweepParameters, flow_timeout_seconds
from synth.runs import OutputLock
from tasks.compare import plan_models, plan_sweep, run_one_variant, write_comparison_outputs
from tasks.extract import load_settings
from tasks.io import upload_output
from tasks.preprocess import check_extract, fingerprint_source, open_run_folders, preprocess_extract
from tasks.work import finish_work


@flow(name="compare", description="Several synthesizers on the same split, evaluation and gate: one table, one page.",
      timeout_seconds=flow_timeout_seconds())
def compare(params: CompareParameters) -> list[dict]:
    return _study(params, lambda prepared: plan_models(params.models, prepared.schema), "Synthesizer comparison")


@flow(name="epsilon-sweep", description="The DP VAE over privacy budgets: quality, utility and attack AUC against ε.",
      timeout_seconds=flow_timeout_seconds())
def epsilon_sweep(params: SweepParameters) -> list[dict]:
    return _study(params, lambda prepared: plan_sweep(params.epsilons), "Privacy budget sweep", sweep=True)


def _study(params: CompareParameters | SweepParameters, plan, title: str, sweep: bool = False) -> list[dict]:
    """Preprocess once; each planned variant fitted, sampled and judged (mapped); one table and page."""
    config = load_settings(params.config_path, params.overrides())
    fingerprint = fingerprint_source(params.source, config)
    run = open_run_folders(fingerprint, config, params.output, params.work_dir)
    with OutputLock(Path(run.output), owner=f"flow run {runtime.flow_run.name} ({runtime.flow_run.id})"):
        prepared = preprocess_extract(params.source, fingerprint, config, run.work)
        check_extract(prepared)
        rows = run_one_variant.map(plan(prepared), unmapped(prepared), unmapped(config), unmapped(run.output),
                                   unmapped(run.work), unmapped(params.rows))
        rows = write_comparison_outputs(rows, run.output, title, sweep=sweep)
        upload_output(run)
        finish_work(run, config.keep_work)
    return rows
