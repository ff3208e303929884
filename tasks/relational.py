"""Tasks of a relational run: read the tables, their key gate (GX), hold patients out, fit, sample, evaluate,
manifest.

Each calls the relational library (:mod:`synth.relational`) and passes paths: the real
tables go to the run's work folder (real data never leave it), split there into the
training patients' tables and the held-out patients' tables; the synthetic ones go to a
staging folder that :func:`tasks.evaluate.release_synthetic` renames into ``synthetic/``.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
from prefect import get_run_logger, runtime, task
from prefect.cache_policies import NO_CACHE

from synth.artifact import read_json
from synth.config import PipelineConfig
from synth.io import sql
from synth.io.atomic import write_json_atomic
from synth.manifest import build_manifest, write_manifest
from synth.relational import output as tables_io
from synth.relational.evaluation import evaluate_relational
from synth.relational.gate import relational_verdict
from synth.relational.integrity import IntegrityError, integrity_problems, validate_integrity
from synth.relational.model import RelationalSynthesizer
from synth.relational.privacy import privacy_by_patient, split_patients
from synth.relational.schema import RelationalSchema
from synth.relational.sources import read_tables, relational_sources, tables_fingerprint
from synth.report.relational import write_relational_report
from synth.runs import WorkDir
from synth.sampling import SampleResult, model_fingerprint
from synth.work import make_private
from tasks.preprocess import IO_RETRIES, RunFolders
from tasks.user_errors import retry_unless_user_error


@dataclass(frozen=True)
class RealTables:
    """The real tables in the work folder (``folder/<table>/part-*.parquet``), their tree and what was inferred."""

    folder: str
    schema: RelationalSchema
    rows: dict[str, int]
    inferences: tuple[str, ...]


@task(name="fingerprint-tables", cache_policy=NO_CACHE, **IO_RETRIES)
def fingerprint_tables(config: PipelineConfig) -> str:
    """A hash that changes when any table of the extract changes."""
    return tables_fingerprint(config)


@task(name="read-tables", cache_policy=NO_CACHE, **IO_RETRIES)
def read_extract_tables(config: PipelineConfig, work: WorkDir) -> RealTables:
    """Read every table into the work folder; log their sizes and every key inferred, as sentences."""
    logger = get_run_logger()
    tables, schema, inferences = read_tables(config, logger.info)
    folder = Path(work.path) / "real"
    shutil.rmtree(folder, ignore_errors=True)  # a table dropped from the config since the last run goes too
    rows = tables_io.write_tables(tables, folder, config.sampling.chunk_rows)
    make_private(work.path)
    logger.info("tables, parents first: " + " -> ".join(schema.order) + "; relations: "
                + "; ".join(str(r) for r in schema.relations))
    return RealTables(str(folder), schema, rows, tuple(inferences))


@task(name="check-keys", cache_policy=NO_CACHE)
def check_keys(real: RealTables) -> int:
    """The GX gate on the keys, one validation per table: orphans, duplicate or null keys stop the run.

    Raises:
        IntegrityError: naming each table, column and count.
    """
    tables = tables_io.read_tables(real.folder, list(real.schema.order))
    outcomes = validate_integrity(tables, real.schema)
    problems = integrity_problems(outcomes, tables, real.schema)
    if problems:
        raise IntegrityError("the extract's keys are not intact, so nothing was trained: " + "; ".join(problems))
    expectations = sum(len(found) for found in outcomes.values())
    get_run_logger().info(f"key validation passed ({expectations} expectations over {len(outcomes)} tables, GX)")
    return expectations


@dataclass(frozen=True)
class HeldOut:
    """The real tables split by patient: those the model trains on, and the held-out patients' (never trained on)."""

    training: RealTables
    holdout: RealTables


@task(name="hold-out-patients", cache_policy=NO_CACHE, **IO_RETRIES)
def hold_out_patients(real: RealTables, config: PipelineConfig, work: WorkDir) -> HeldOut:
    """Hold a seeded share of the patients (root rows) and every row under them out of training
    (``evaluation.holdout_fraction``, the flat pipeline's rule and seed)."""
    tables = tables_io.read_tables(real.folder, list(real.schema.order))
    training, holdout = split_patients(tables, real.schema, config.evaluation.holdout_fraction, config.seed)
    sides = {}
    for side, split in (("train", training), ("holdout", holdout)):
        folder = Path(work.path) / side
        shutil.rmtree(folder, ignore_errors=True)
        rows = tables_io.write_tables(split, folder, config.sampling.chunk_rows)
        sides[side] = RealTables(str(folder), real.schema, rows, real.inferences)
    make_private(work.path)
    root = real.schema.root
    get_run_logger().info(
        f"held out {sides['holdout'].rows[root]:,} of {real.rows[root]:,} patients ({root} rows) and every row under "
        f"them, for the privacy checks (evaluation.holdout_fraction {config.evaluation.holdout_fraction:g})"
    )
    return HeldOut(sides["train"], sides["holdout"])


@task(name="train-relational-model", cache_policy=NO_CACHE)  # never retried: a retry would train again
def train_relational_model(real: RealTables, config: PipelineConfig, model_dir: str) -> str:
    """Fit one conditional VAE per table of the tree, parents first, and save the model folder."""
    started = time.perf_counter()
    tables = tables_io.read_tables(real.folder, list(real.schema.order))
    model = RelationalSynthesizer().fit(tables, real.schema, config)
    model.save(model_dir)
    logger = get_run_logger()
    privacy = model.privacy_
    if privacy.enabled:
        caps = privacy.parts["contribution_bounds"]["caps"]
        dropped = ", ".join(f"{name} {n:,}" for name, n in model.dropped_.items() if n) or "none"
        logger.info("differential privacy, the patient being the unit across all tables: rows per patient capped at "
                    + ", ".join(f"{name} {cap}" for name, cap in caps.items())
                    + f"; rows over the caps dropped at random: {dropped}")
    spent = f"; epsilon spent {privacy.epsilon_spent:.3f} of {privacy.epsilon_target:g} (delta {privacy.delta:.2e}, " \
            f"{privacy.steps} DP-SGD steps over all tables' networks)" if privacy.enabled else ""
    logger.info(f"relational model: {len(real.schema.order)} tables fitted in {time.perf_counter() - started:.1f}s"
                f"{spent}; saved to {model_dir}")
    return model_dir


@task(name="sample-relational", cache_policy=NO_CACHE)
def sample_relational(model_dir: str, staging: str, config: PipelineConfig, real: RealTables) -> SampleResult:
    """Sample the root rows (``sampling.rows``, default as many as the real root) and everything under them."""
    started = time.perf_counter()
    model = RelationalSynthesizer.load(model_dir)
    roots = config.sampling.rows or real.rows[real.schema.root]
    shutil.rmtree(staging, ignore_errors=True)  # an earlier run's tables must not be released with these
    rows = tables_io.write_tables(model.sample(roots, seed=config.seed), staging, config.sampling.chunk_rows)
    get_run_logger().info("sampled " + ", ".join(f"{name} {n:,}" for name, n in rows.items())
                          + f" rows in {time.perf_counter() - started:.1f}s")
    return SampleResult(folder=staging, rows=sum(rows.values()), chunks=len(rows))


@task(name="evaluate-relational", cache_policy=NO_CACHE)
def evaluate_relational_run(
    real: RealTables, held: HeldOut, model_dir: str, sampled: SampleResult, config: PipelineConfig, output_dir: str
) -> dict:
    """Quality per table (against the training rows), children per parent, pair trends across tables, orphans,
    date orders, privacy by patient per table (against the training and held-out patients); the gate;
    ``metrics.json`` and ``report.html`` written."""
    names = list(real.schema.order)
    model = RelationalSynthesizer.load(model_dir)
    training = tables_io.read_tables(held.training.folder, names)
    holdout = tables_io.read_tables(held.holdout.folder, names)
    synthetic = tables_io.read_tables(sampled.folder, names)
    schemas = {n: m.schema for n, m in model.tables_.items()}
    metrics = evaluate_relational(training, synthetic, real.schema, schemas, threshold=config.entity.order_threshold)
    metrics["privacy"] = privacy_by_patient(training, holdout, synthetic, real.schema, schemas, config.evaluation,
                                            config.gate, config.seed)
    metrics["tables"] = names
    metrics["rows"] = {n: {"real": real.rows[n], "training": held.training.rows[n], "holdout": held.holdout.rows[n],
                           "synthetic": synthetic[n].num_rows} for n in names}
    metrics["key_inferences"] = list(real.inferences)
    metrics |= _metrics_privacy(model.privacy_)
    metrics["gate"] = relational_verdict(metrics, config.gate)
    output = Path(output_dir)
    write_json_atomic(output / "metrics.json", metrics)
    write_relational_report(metrics, output / "report.html")
    quality = ", ".join(f"{n} {q['quality_score']:.3f}" for n, q in metrics["quality"].items())
    cardinality = ", ".join(f"{r.split(' -> ')[0]} {v:.3f}" for r, v in metrics["cardinality"].items())
    get_run_logger().info(
        f"quality per table: {quality}; children per parent (KS complement): {cardinality}; orphans "
        f"{sum(metrics['orphans'].values())}; broken date orders {sum(metrics['date_orders'].values())}; "
        f"gate {metrics['gate']['summary']}"
    )
    return metrics


@task(name="write-sql-tables", cache_policy=NO_CACHE, **IO_RETRIES)
def write_sql_tables(synthetic_dir: str | None, prefix: str | None, config: PipelineConfig, real: RealTables
                     ) -> list[dict]:
    """Write every released table to SQL as ``<prefix><table>`` with its keys, in one transaction;
    nothing when no prefix is given or nothing was released."""
    if not (synthetic_dir and prefix):
        return []
    schema = real.schema
    parts = {name: (pq.read_table(p) for p in sorted((Path(synthetic_dir) / name).glob("part-*.parquet")))
             for name in schema.order}
    links = {name: [(r.column, r.parent, r.key) for r in schema.relations + schema.shortcuts if r.child == name]
             for name in schema.order}
    engine = sql.engine_from_env(config.source.sql_url_env)
    try:
        rows = sql.write_related_tables(engine, parts, schema.primary_keys, links, prefix)
    finally:
        engine.dispose()
    get_run_logger().info("wrote SQL tables " + ", ".join(f"{prefix}{n} ({r:,} rows)" for n, r in rows.items())
                          + " with their keys, in one transaction")
    return [{"kind": "sql", "mode": "replace", "tables": {f"{prefix}{n}": r for n, r in rows.items()}}]


@task(name="write-manifest", cache_policy=NO_CACHE, retries=2,
      retry_delay_seconds=[2, 10], retry_condition_fn=retry_unless_user_error)
def write_relational_manifest(
    run: RunFolders, config: PipelineConfig, fingerprint: str, real: RealTables, expectations: int, model_dir: str,
    metrics: dict, sinks: list[dict],
) -> str:
    """``manifest.json`` beside the outputs, written last, listing every table's parts."""
    manifest = build_manifest(
        run.output,
        run={"id": str(runtime.flow_run.id), "name": runtime.flow_run.name, "flow": runtime.flow_run.flow_name,
             "deployment": runtime.deployment.name, "ui_url": runtime.flow_run.ui_url},
        source={"tables": relational_sources(config), "fingerprint": fingerprint},
        schema={"primary_keys": real.schema.primary_keys, "relations": [str(r) for r in real.schema.relations],
                "shortcuts": [str(r) for r in real.schema.shortcuts], "order": list(real.schema.order)},
        rows=metrics["rows"],
        model={"name": RelationalSynthesizer.name, "fingerprint": model_fingerprint(model_dir)},
        privacy=_privacy_facts(model_dir),
        gate={"extract_validation": {"success": True, "expectations": expectations, "tables": len(real.schema.order)},
              "release": metrics.get("gate")},
        sinks=sinks,
    )
    released = Path(run.output) / "synthetic"
    manifest["tables"] = {
        name: sorted(f"synthetic/{name}/{p.name}" for p in (released / name).glob("part-*.parquet"))
        for name in real.schema.order
    }
    path = write_manifest(run.output, manifest)
    get_run_logger().info(f"manifest: {path} ({len(manifest['files'])} files)")
    return str(path)


def _privacy_facts(model_dir: str) -> dict:
    """The manifest's privacy entry, from the model folder's privacy.json (as the flat manifest's)."""
    path = Path(model_dir) / "privacy.json"
    if not path.is_file():
        return {"enabled": False, "epsilon": None, "unit": None}
    privacy = read_json(path)
    return {"enabled": True, "epsilon": privacy["epsilon_spent"], "epsilon_target": privacy["epsilon_target"],
            "delta": privacy["delta"], "unit": privacy["unit"],
            "contribution_bounds": privacy["parts"]["contribution_bounds"]["caps"]}


def _metrics_privacy(privacy) -> dict:
    """The DP facts metrics.json carries, as the flat run's (None without DP)."""
    if not privacy.enabled:
        return {"epsilon": None, "epsilon_target": None, "delta": None, "privacy_unit": None}
    return {"epsilon": privacy.epsilon_spent, "epsilon_target": privacy.epsilon_target, "delta": privacy.delta,
            "privacy_unit": privacy.unit, "epsilon_cap_reached": privacy.stopped_at_cap}
