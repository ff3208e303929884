"""The ``synth`` command: parse, check the inputs, start a flow, print the outcome.

Every command but ``verify`` (which only reads a folder) runs a Prefect flow. Without
``PREFECT_API_URL`` Prefect starts a temporary (ephemeral) API for the run, so no server
is needed. Errors the user can fix
print one line and exit with status 1; only bugs show a traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

# Before Prefect is imported: no telemetry, and room for a slow first start on small machines.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")

import typer  # noqa: E402
from rich.console import Console  # noqa: E402

from synth.config import load_config  # noqa: E402
from synth.errors import ConfigError, SynthError, TransientError  # noqa: E402
from synth.io.outputs import check_output  # noqa: E402
from synth.io.uri import check_source  # noqa: E402

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Synthetic patient data from real extracts.")
# soft_wrap: an error is one line, however narrow the terminal (or a log collector).
console = Console(stderr=True, soft_wrap=True)

VERBOSE_HELP = "also print Dask's own INFO lines (scheduler, workers)"
DEMO_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "synth-pipeline" / "demo"


@app.command()
def demo(
    output: Annotated[
        Optional[Path], typer.Option(help="output folder (default: out/demo, or out/demo-relational with --relational)")
    ] = None,
    epochs: Annotated[Optional[int], typer.Option(help="maximum training epochs")] = None,
    seed: Annotated[Optional[int], typer.Option(help="seed")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help=VERBOSE_HELP)] = False,
    relational: Annotated[
        bool, typer.Option("--relational", help="the demo's four related tables (patients, admissions, ICU stays, "
                           "output events) instead of the flat episode table")
    ] = False,
) -> None:
    """Run the whole pipeline on the bundled MIMIC-III demo extract."""
    from synth.demo.mimic import DEMO_CONFIG, DEMO_DATA_DIR, write_episode_table

    if relational:
        from synth.demo.mimic_relational import write_relational_demo

        with _user_errors():
            config = write_relational_demo(DEMO_DATA_DIR, DEMO_CACHE / "mimic3_relational")
        # Its own folder: the flat demo's output stays beside it, not overwritten table by table.
        _run_relational(output or Path("out/demo-relational"), config, rows=None, epochs=epochs, seed=seed)
        return
    with _user_errors():
        source = write_episode_table(DEMO_DATA_DIR, DEMO_CACHE / "mimic3_episodes.parquet")
    _run_generate(source, output or Path("out/demo"), DEMO_CONFIG, rows=None, epochs=epochs, seed=seed, dp_epsilon=None, verbose=verbose)


@app.command()
def run(
    output: Annotated[Path, typer.Option(help="output folder")],
    source: Annotated[
        Optional[str],
        typer.Option(help="CSV/Parquet file, folder or glob of the real extract (none: the config's tables:)"),
    ] = None,
    config: Annotated[Optional[Path], typer.Option(help="YAML config")] = None,
    rows: Annotated[Optional[int], typer.Option(help="synthetic rows (default: as many as the extract)")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="maximum training epochs")] = None,
    seed: Annotated[Optional[int], typer.Option(help="seed")] = None,
    dp_epsilon: Annotated[Optional[float], typer.Option(help="DP budget ε > 0 (off if unset)")] = None,
    keep_work: Annotated[
        bool, typer.Option("--keep-work", help="keep the work folder of real-data intermediates after the run")
    ] = False,
    sql_prefix: Annotated[
        Optional[str],
        typer.Option(help="tables: only; also write every synthetic table to SQL (URL in SYNTH_SQL_URL) as "
                     "<prefix><table> with its keys, in one transaction"),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help=VERBOSE_HELP)] = False,
) -> None:
    """Train on a real extract, generate synthetic data, evaluate it.

    Without --source, the config's ``tables:`` section names a relational extract (related
    tables with their keys), and each table is generated with its keys intact.
    """
    with _user_errors():
        relational = _is_relational(source, config)
        if not relational and sql_prefix is not None:
            raise ConfigError("--sql-prefix writes the tables of a relational extract (a config's tables:); a "
                              "single table goes to SQL through the deployment's sql_table")
    if relational:
        _run_relational(output, config, rows=rows, epochs=epochs, seed=seed, keep_work=keep_work or None,
                        sql_prefix=sql_prefix, dp_epsilon=dp_epsilon)
        return
    _run_generate(source, output, config, rows=rows, epochs=epochs, seed=seed, dp_epsilon=dp_epsilon, verbose=verbose,
                  keep_work=keep_work or None)


def _is_relational(source: str | None, config: Path | None) -> bool:
    """Whether this run is relational: no --source and a config with ``tables:``.

    Raises:
        ConfigError: both --source and ``tables:``, or neither.
    """
    tables = config is not None and load_config(config).tables is not None
    if source is not None and tables:
        raise ConfigError(f"--source and the tables: section of {config} are mutually exclusive: give --source for "
                          "one table, or leave it out to read the tables the config names")
    if source is None and not tables:
        raise ConfigError("give --source (one table), or a --config whose tables: section names a relational extract")
    return tables


def _run_relational(output, config, **overrides) -> None:
    """Check everything that needs no data, run the relational flow, print the outcome."""
    from flows.parameters import RelationalParameters

    with _user_errors():
        params = _parameters(RelationalParameters, output=str(output), config_path=str(config), **overrides)
        settings = load_config(config).with_overrides(**params.overrides())
        from synth.relational.sources import check_sources

        check_sources(settings)
        check_output(output)
        from flows.relational import generate_relational

        metrics = _metrics(generate_relational, params)
    from synth.evaluation.gate import releases

    if releases(metrics["gate"]):
        rows = ", ".join(f"{name} {counts['synthetic']:,}" for name, counts in metrics["rows"].items())
        console.print(f"[green]done:[/green] {rows} synthetic rows in {Path(output) / 'synthetic'}/<table>; "
                      f"orphans {sum(metrics['orphans'].values())}; broken date orders "
                      f"{sum(metrics['date_orders'].values())}; report {Path(output) / 'report.html'}")
    _exit_on_failed_gate(metrics, output, released=True)


@app.command()
def sample(
    model: Annotated[Path, typer.Option(help="model folder from an earlier run (DIR/model)")],
    rows: Annotated[int, typer.Option(help="synthetic rows")],
    output: Annotated[Path, typer.Option(help="output folder")],
    seed: Annotated[int, typer.Option(help="seed (use a new one for a new month's data)")] = 0,
    workers: Annotated[
        int, typer.Option(help="local worker processes writing parts at once (the same bytes for any number)")
    ] = 1,
    dask_address: Annotated[
        Optional[str],
        typer.Option(help="an existing Dask scheduler to write the parts on (its workers read the model folder)"),
    ] = None,
) -> None:
    """Generate new synthetic data from a saved model, without retraining."""
    from flows.parameters import SampleParameters

    with _user_errors():
        params = _parameters(
            SampleParameters, model=str(model), rows=rows, output=str(output), seed=seed, workers=workers,
            dask_address=dask_address,
        )
        check_output(output)
        from flows.sample import sample as sample_flow
        from synth.models import load_synthesizer

        load_synthesizer(model)  # fail fast, with a clear message, on a bad folder
        result = sample_flow(params)
    console.print(f"[green]wrote {result['rows']:,} rows to {result['folder']}[/green]")


def _run_generate(source, output, config, **overrides) -> None:
    from flows.parameters import GenerateParameters

    # Everything that can be checked without the data is checked before the flow (and its
    # imports) start: a wrong path or flag answers in a second, not after a Prefect server start.
    with _user_errors():
        params = _checked_parameters(GenerateParameters, [source], output, config, source=str(source), **overrides)
        from flows.generate import generate

        metrics = _metrics(generate, params)
    from synth.evaluation.gate import releases

    if releases(metrics["gate"]):
        console.print(
            f"[green]done:[/green] {metrics['rows']:,} synthetic rows in {Path(output) / 'synthetic'}; "
            # A gate that failed unenforced is told below, once, with its reason and checks.
            + (f"gate {metrics['gate'].get('summary', 'PASS')}; " if metrics["gate"]["verdict"] == "pass" else "")
            + f"quality {metrics['quality_score']:.3f}; exact copies {metrics['exact_collisions']}; "
            f"report {Path(output) / 'report.html'}"
        )
    _exit_on_failed_gate(metrics, output, released=True)


@app.command()
def tune(
    source: Annotated[str, typer.Option(help="CSV/Parquet file, folder or glob of the real extract")],
    output: Annotated[Path, typer.Option(help="output folder for tuned.yaml and trials.csv")],
    config: Annotated[Optional[Path], typer.Option(help="YAML config; its model.epochs bounds each trial's")] = None,
    trials: Annotated[int, typer.Option(help="at most this many trials")] = 20,
    timeout_seconds: Annotated[Optional[float], typer.Option(help="no new trials after this many seconds")] = None,
    min_privacy_ratio: Annotated[
        float, typer.Option(help="least median DCR to training rows, as a share of unseen rows' (0.9: the gate's)")
    ] = 0.9,
    seed: Annotated[Optional[int], typer.Option(help="seed")] = None,
    workers: Annotated[int, typer.Option(help="trials run at once")] = 2,
) -> None:
    """Choose the model's settings on validation quality and closeness to training rows; write tuned.yaml."""
    with _user_errors():
        from flows.parameters import TuneParameters

        params = _checked_parameters(
            TuneParameters, [source], output, config, source=str(source), trials=trials,
            timeout_seconds=timeout_seconds, min_privacy_ratio=min_privacy_ratio, seed=seed, workers=workers,
        )
        from flows.tune import tune as tune_flow

        result = tune_flow(params)
    console.print(f"[green]chosen:[/green] {result['note']}")
    console.print(f"  model: {result['chosen']}")
    console.print(f"tuned config: {result['tuned_yaml']} (every trial: {result['trials_csv']}); rerun with "
                  f"synth run --source {source} --output OUT --config {result['tuned_yaml']}", markup=False)


@app.command()
def evaluate(
    real: Annotated[str, typer.Option(help="the real table: CSV/Parquet file, folder or glob")],
    synthetic: Annotated[str, typer.Option(help="the synthetic table to judge (made here or elsewhere)")],
    output: Annotated[Path, typer.Option(help="output folder for metrics.json and report.html")],
    holdout: Annotated[
        Optional[str],
        typer.Option(help="real rows the generator never saw; without them the gate cannot pass (closeness and "
                     "membership are judged against a split of --real, which the generator may have seen)"),
    ] = None,
    model: Annotated[Optional[Path], typer.Option(help="model folder: its schema and ε are used")] = None,
    config: Annotated[Optional[Path], typer.Option(help="YAML config (read options, evaluation, gate)")] = None,
    target: Annotated[Optional[str], typer.Option(help="column for the TSTR utility check")] = None,
    entity_key: Annotated[
        Optional[str],
        typer.Option(help="the patient identifier column (default: inferred as `synth run` does, or the model's)"),
    ] = None,
    seed: Annotated[Optional[int], typer.Option(help="seed")] = None,
) -> None:
    """Judge any synthetic table against a real one: metrics, report and the release gate."""
    from flows.parameters import EvaluateParameters

    with _user_errors():
        params = _checked_parameters(
            EvaluateParameters, [p for p in (real, synthetic, holdout) if p is not None], output, config,
            real=real, synthetic=synthetic, holdout=holdout, model=str(model) if model else None,
            target=target, entity_key=entity_key, seed=seed,
        )
        from flows.evaluate import evaluate as evaluate_flow

        metrics = _metrics(evaluate_flow, params)
    if metrics["gate"]["verdict"] == "pass":
        console.print(
            f"[green]gate {metrics['gate'].get('summary', 'PASS')}:[/green] quality {metrics['quality_score']:.3f}; "
            "exact copies "
            f"{metrics['exact_collisions']}; MIA AUC {metrics['mia_auc']:.3f}; report {output / 'report.html'}"
        )
    _exit_on_failed_gate(metrics, output, released=False)


@app.command()
def compare(
    source: Annotated[str, typer.Option(help="CSV/Parquet file, folder or glob of the real extract")],
    output: Annotated[Path, typer.Option(help="output folder: compare.csv, compare.md, compare.html")],
    config: Annotated[Optional[Path], typer.Option(help="YAML config shared by every synthesizer")] = None,
    models: Annotated[
        Optional[str],
        typer.Option(help="comma-separated model names (default: the VAE suited to the extract and every baseline)"),
    ] = None,
    rows: Annotated[Optional[int], typer.Option(help="synthetic rows each (default: as many as the training split)")] \
        = None,
    seed: Annotated[Optional[int], typer.Option(help="seed")] = None,
) -> None:
    """Compare synthesizers on one extract: same split, same evaluation and gate; a table and a page of plots."""
    from flows.parameters import CompareParameters

    _run_study("compare", CompareParameters, source, output, config, rows=rows, seed=seed,
               models=[m.strip() for m in models.split(",")] if models else None)


@app.command()
def sweep(
    source: Annotated[str, typer.Option(help="CSV/Parquet file, folder or glob of the real extract")],
    output: Annotated[Path, typer.Option(help="output folder: compare.csv, compare.md, compare.html")],
    config: Annotated[Optional[Path], typer.Option(help="YAML config")] = None,
    epsilons: Annotated[
        str, typer.Option(help="comma-separated privacy budgets; inf: no differential privacy")
    ] = "0.5,1,3,10,inf",
    rows: Annotated[Optional[int], typer.Option(help="synthetic rows each (default: as many as the training split)")] \
        = None,
    seed: Annotated[Optional[int], typer.Option(help="seed")] = None,
) -> None:
    """The DP VAE (the patient as the unit) over privacy budgets: quality, utility and attack AUC against ε."""
    from flows.parameters import SweepParameters

    _run_study("epsilon_sweep", SweepParameters, source, output, config, rows=rows, seed=seed,
               epsilons=[e.strip() for e in epsilons.split(",")])


def _run_study(flow_name: str, kind, source, output, config, **values) -> None:
    """Check the inputs, run the comparison flow, print its markdown table (stdout) and where the page is."""
    from synth.compare import markdown_table

    with _user_errors():
        params = _checked_parameters(kind, [source], output, config, source=str(source), **values)
        import flows.compare

        rows = getattr(flows.compare, flow_name)(params)
    print(markdown_table(rows), end="")
    console.print(f"[green]compared {len(rows)} variants:[/green] {Path(output) / 'compare.csv'}, "
                  f"{Path(output) / 'compare.md'}, {Path(output) / 'compare.html'}")


@app.command()
def clean(
    all_: Annotated[bool, typer.Option("--all", help="remove every work folder")] = False,
    older_than: Annotated[
        Optional[float], typer.Option(min=0, help="remove work folders unused for more than this many days")
    ] = None,
    output: Annotated[Optional[str], typer.Option(help="remove the work folders of this output folder or URI")] = None,
    work_dir: Annotated[
        Optional[Path], typer.Option(help="the work root (default: ~/.cache/synth-pipeline/work)")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list what would be removed, remove nothing")] = False,
) -> None:
    """List or remove work folders: the real-data intermediates runs keep (failed runs, keep_work: true).

    Without --all, --older-than or --output, lists them all and removes nothing.
    """
    from synth.runs import default_work_root
    from synth.work import find_work_dirs, remove_work_dir, select_work_dirs

    root = work_dir or default_work_root()
    found = find_work_dirs(root)
    selecting = all_ or older_than is not None or output is not None
    chosen = select_work_dirs(found, everything=all_, older_than_days=older_than, output=output) if selecting else found
    removing = selecting and not dry_run
    verb = "removing" if removing else ("would remove" if selecting else "found")
    console.print(f"{len(found)} work folder(s) under {root}; {verb} {len(chosen)}:")
    for work in chosen:
        console.print(f"  {work.path}  {work.bytes / 1e6:,.1f} MB  unused {work.age_days:.1f} days  "
                      f"output {work.output or 'unknown'}")
        if removing:
            with _user_errors():
                remove_work_dir(work.path)
    if not selecting and found:
        console.print("remove them with --all, --older-than DAYS or --output OUT (--dry-run to list only)")


@app.command()
def verify(folder: Annotated[Path, typer.Argument(help="a run's output folder (holding manifest.json)")]) -> None:
    """Check a run folder against its manifest: every file, its size and SHA-256; nothing else; the seal.

    Exit status 0: the folder is exactly what its manifest lists; 1: a problem (each one listed).
    """
    from synth.verify import verify_run_folder

    result = verify_run_folder(folder)
    plain = {"markup": False, "highlight": False, "soft_wrap": True}  # paths may hold [brackets]; one line each
    console.print(result.summary(), style="green" if result.ok else "red", **plain)
    for problem in result.problems:
        console.print(f"  - {problem}", **plain)
    if not result.ok:
        sys.exit(1)


GATE_FAILED = 3  # distinct from 1 (a user error): the run worked, the data failed the release gate


def _metrics(flow, params) -> dict:
    """Run ``flow``; its metrics, those of a run whose release gate refused the data too (a Failed run)."""
    from tasks.evaluate import ReleaseRefused

    try:
        return flow(params)
    except ReleaseRefused as refused:
        return refused.metrics


def _exit_on_failed_gate(metrics: dict, output, released: bool) -> None:
    """Print each failing gate check and by how much, then exit with status 3 (if enforced)."""
    from synth.evaluation.gate import releases

    gate = metrics["gate"]
    if gate["verdict"] == "pass":
        return
    report = f"Report: {Path(output) / 'report.html'}"
    if releases(gate):  # not enforced
        colour = "yellow"
        released_anyway = " released anyway." if released else ""
        console.print(f"[yellow]release gate FAILED, not enforced (gate.enforce: false; reason: {gate.get('reason')}):"
                      f"[/yellow]{released_anyway} {report}")
    else:
        colour = "red"
        kept = " The synthetic data were NOT released." if released else ""
        console.print(f"[red]release gate FAILED:[/red]{kept} {report}")
    for reason in gate["reasons"]:
        console.print(f"  [{colour}]-[/{colour}] {reason}")
    if not releases(gate):
        sys.exit(GATE_FAILED)


TRANSIENT_FAILED = 75  # EX_TEMPFAIL: storage or database kept failing; the same command may work later


def _checked_parameters(kind, sources: list, output, config, **values):
    """The flow's parameters, once everything that needs no data is checked: the flags, the config, each
    source's path and format (with the config's declared format), the output folder."""
    params = _parameters(kind, output=str(output), config_path=str(config) if config else None, **values)
    settings = load_config(config).with_overrides(**params.overrides())
    for source in sources:
        check_source(str(source), settings.source.format)
    check_output(output)
    return params


def _parameters(kind, /, **values):
    """The flow's parameter model, its validation errors as one :class:`ConfigError` naming the flags."""
    from pydantic import ValidationError

    try:
        return kind(**values)
    except ValidationError as exc:
        problems = [
            f"--{str(err['loc'][0]).replace('_', '-')} {err.get('input')}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        ]
        raise ConfigError("; ".join(problems)) from None


class _user_errors:
    """Turn :class:`SynthError`, and a run that outlived its timeout, into one red line and exit status 1;
    a fault that outlasted the retries, 75."""

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if isinstance(error, SynthError):
            console.print(f"[red]error:[/red] {error}")
            sys.exit(1)
        if isinstance(error, TransientError):
            console.print(f"[red]error:[/red] {error}; it persisted through the retries: try again later")
            sys.exit(TRANSIENT_FAILED)
        if isinstance(error, TimeoutError):
            from prefect.flow_engine import FlowRunTimeoutError

            from flows.parameters import FLOW_TIMEOUT_ENV, flow_timeout_seconds

            if not isinstance(error, FlowRunTimeoutError):
                return False
            console.print(f"[red]error:[/red] the run did not finish within its timeout ({flow_timeout_seconds():g}s) "
                          f"and was stopped; set {FLOW_TIMEOUT_ENV} to allow longer")
            sys.exit(1)
        return False


if __name__ == "__main__":
    app()
