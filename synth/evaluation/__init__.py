"""Evaluation: how useful, faithful and private the synthetic data are.

One module per check; :func:`evaluate` runs them and returns the flat metrics dict that
becomes ``metrics.json`` (plus a ``figures`` entry of plot aggregates for the report,
kept out of ``metrics.json``). Sampling-based checks state their sample sizes, and
``timings`` holds each check's seconds.

Memory is bounded by the sample sizes, not by the synthetic table: the synthetic rows are
read once, batch by batch (:class:`synth.io.scan.TableScan`), counting exact copies,
identifier values and patient summaries over every row and gathering the seeded pool the
sampling checks draw from. The real and holdout tables are held whole: callers pass
bounded samples (the pipeline's training sample and holdout sample). Each check gets its own random stream, spawned
from the one seed, so adding a check never changes another's numbers.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synth.config import EvaluationOptions, GateOptions
from synth.crashpoints import crash_point
from synth.evaluation.attribute import attribute_inference
from synth.evaluation.collisions import CopyCounter, copies_against_holdout, exact_collisions, holdout_overlap
from synth.evaluation.correlation import correlation_scores
from synth.evaluation.diagnostic import diagnostic_scores
from synth.evaluation.distance import distance_scores
from synth.evaluation.distributions import distribution_scores
from synth.evaluation.encoding import encode
from synth.evaluation.entities import SyntheticEntities
from synth.evaluation.fairness import fairness_scores
from synth.evaluation.gate import gate_verdict
from synth.evaluation.identifiers import IdentifierCheck
from synth.evaluation.membership import membership_inference
from synth.evaluation.pca import pca_scores
from synth.evaluation.propensity import propensity_scores
from synth.evaluation.quality import quality_scores
from synth.evaluation.samples import sample_indices
from synth.evaluation.tables import check_options, conform
from synth.evaluation.utility import utility_scores
from synth.evaluation.voas_williamson import voas_williamson
from synth.errors import SourceError
from synth.holdout import split_holdout
from synth.io.scan import TableScan
from synth.pii.rules import generalised_table
from synth.schema import Schema

__all__ = ["evaluate", "gate_verdict"]

#: Holdout share drawn from the real table when none is given (nor configured).
FALLBACK_HOLDOUT_FRACTION = 0.2
FALLBACK_SPLIT_SEED_OFFSET = 7919
_STREAMS = ("pool", "quality", "propensity", "pca", "distance", "membership", "attribute", "utility")


def evaluate(
    real: pa.Table,
    synthetic: str | Path | pa.Table | TableScan,
    schema: Schema,
    options: EvaluationOptions | None = None,
    seed: int = 0,
    holdout: pa.Table | None = None,
    gate: GateOptions | None = None,
    constraints: list | None = None,
) -> dict:
    """Compare a synthetic table (or Parquet folder) with the real extract, and judge it.

    Args:
        real: the real rows the generator was trained on.
        synthetic: a Parquet dataset (folder, file or glob; a path or an fsspec URI), a
            :class:`TableScan`, or a table, with the schema's columns. Never read whole.
        schema: column kinds (identifiers are left out of every comparison).
        options: sample sizes, target, sensitive and protected columns.
        seed: seeds every sample and model.
        holdout: real rows the generator never saw (privacy and utility baselines). When
            absent or empty, a seeded split of ``real`` stands in, and ``holdout_source``
            says so: the generator may have seen those rows, so closeness and membership
            cannot be judged and the gate fails them ("unknown: no unseen real rows").
            A given holdout is checked for overlap with ``real`` (``metrics["holdout"]``):
            rows repeated beyond the real table's own duplication fail the gate the same way.
        gate: release thresholds; the verdict is ``metrics["gate"]``.
        constraints: declared constraints, counted on the real and synthetic rows.

    Raises:
        ConfigError: a column named in ``options`` is not a modelled column.
        SchemaError: the synthetic table lacks a column or holds values of another kind.
        SourceError: the holdout holds patients of the real table (it is not unseen).
    """
    options = options or EvaluationOptions()
    gate = gate or GateOptions()
    check_options(options, schema)
    scan = synthetic if isinstance(synthetic, TableScan) else TableScan(synthetic)
    columns = conform(scan.schema.empty_table(), schema, "synthetic").column_names  # a missing column fails here
    crash_point("evaluate")
    with_holdout = [real] if holdout is None else [real, holdout]
    identifiers = IdentifierCheck(with_holdout, schema, scan.column_names)  # on the columns as read
    # Real rows read from an extract hold generalised identifiers at full precision; the
    # synthetic data are compared with them generalised, as the model saw them.
    real = conform(generalised_table(real, schema.direct_identifiers), schema, "real")
    holdout_source = "given: real rows the generator never saw"
    given = holdout is not None and holdout.num_rows > 0
    whole_real = real  # copies count against every real row, the split-off ones too
    if given:
        holdout = conform(generalised_table(holdout, schema.direct_identifiers), schema, "holdout")
        overlap = holdout_overlap(real, holdout, schema)
        if overlap["shared_patients"]:
            raise SourceError(
                f"the holdout shares {overlap['shared_patients']} patients (entity key {schema.entity_key!r}) with "
                "the real table: a holdout must hold only people the generator never saw; remove them from it"
            )
    else:
        fraction = options.holdout_fraction or FALLBACK_HOLDOUT_FRACTION
        # Another seed than the pipeline's own split: with the same one (a hash of the patient
        # key), a table that already is a training split would yield an empty holdout.
        real, holdout = split_holdout(real, schema, fraction, seed + FALLBACK_SPLIT_SEED_OFFSET)
        holdout_source = (
            f"a seeded {fraction:.0%} split of the real table (by patient when there is an entity key); "
            "the generator may have seen these rows, so closeness and membership cannot be judged"
        )
    rngs = dict(zip(_STREAMS, (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(_STREAMS)))))
    timings: dict[str, float] = {}

    @contextmanager
    def timed(name: str):
        start = time.perf_counter()
        yield
        timings[name] = round(time.perf_counter() - start, 3)

    with timed("synthetic_pass"):
        pool_rows = max(options.sample_rows, options.distance_rows, options.propensity_rows,
                        options.attack_reference_rows, options.utility_rows)
        # Every sampling check draws from this pool of synthetic rows.
        pool_positions = sample_indices(scan.num_rows, pool_rows, rngs["pool"])
        references = {"training": real, "holdout": holdout} | ({} if whole_real is real else {"real": whole_real})
        copies = CopyCounter(references, schema)
        entities = SyntheticEntities(real.to_pandas(), schema, constraints or [])
        entities.measure_units(scan)
        pool = _stream(scan, schema, pool_positions, identifiers, copies, entities)
    with timed("prepare"):
        layout, (train, held, synthetic_pool) = encode(schema, real, holdout, pool)
        real_rows = sample_indices(real.num_rows, options.sample_rows, rngs["quality"])
        synthetic_rows = sample_indices(pool.num_rows, options.sample_rows, rngs["quality"])
        real_frame = real.take(real_rows).to_pandas()
        synthetic_frame = pool.take(synthetic_rows).to_pandas()
        real_sample, synthetic_sample = train.take(real_rows), synthetic_pool.take(synthetic_rows)
        # With an entity key, splits, attacks and small-count suppression work on patients.
        train_patients, holdout_patients = _patients(real, schema), _patients(holdout, schema)
        pool_patients = _patients(pool, schema) if train_patients is not None else None
        sample_patients = train_patients[real_rows] if train_patients is not None else None

    metrics: dict = {
        "rows": scan.num_rows,
        "columns": len(columns),
        "real_rows": real.num_rows,
        "holdout_rows": holdout.num_rows,
        "holdout_source": holdout_source,
        "holdout": {"given": given} | (overlap if given else {}),
        "entity_key": schema.entity_key,
        "evaluation_sample_rows": {"real": len(real_rows), "synthetic": len(synthetic_rows)},
        "suppress_below": options.suppress_below,
    } | identifiers.result()
    figures: dict = {}
    with timed("quality"):
        metrics |= quality_scores(real_frame, synthetic_frame, schema)
    with timed("diagnostic"):
        metrics |= diagnostic_scores(real_frame, synthetic_frame, schema)
    with timed("distributions"):
        found, figures["distributions"] = distribution_scores(layout, real_sample, synthetic_sample,
                                                              options.suppress_below, sample_patients)
        metrics |= found
    with timed("correlation"):
        found, figures["correlation"] = correlation_scores(layout, real_sample, synthetic_sample)
        metrics |= found
    with timed("pca"):
        found, figures["pca"] = pca_scores(layout, real_sample, synthetic_sample, int(rngs["pca"].integers(2**31)),
                                           options.suppress_below, sample_patients)
        metrics |= found
    with timed("propensity"):
        rng = rngs["propensity"]
        real_rows_p = sample_indices(len(train), options.propensity_rows, rng)
        synthetic_rows_p = sample_indices(len(synthetic_pool), options.propensity_rows, rng)
        metrics |= propensity_scores(
            layout, train.take(real_rows_p), synthetic_pool.take(synthetic_rows_p), rng,
            _at(train_patients, real_rows_p), _at(pool_patients, synthetic_rows_p),
        )
    with timed("voas_williamson"):
        metrics |= voas_williamson(layout, real_sample, synthetic_sample)
    with timed("collisions"):
        copied = copies.counts["real" if "real" in copies.counts else "training"]
        metrics |= {"exact_collisions": copied, "exact_collision_rate": copied / copies.rows if copies.rows else 0.0}
        metrics |= copies_against_holdout(real, holdout, copies, schema)
        baseline = exact_collisions(real, holdout, schema)
        metrics |= {"holdout_exact_collisions": baseline["exact_collisions"],
                    "holdout_exact_collision_rate": baseline["exact_collision_rate"]}
    with timed("distance"):
        found, figures["distance"] = distance_scores(train, held, synthetic_pool, options.distance_rows,
                                                     rngs["distance"], gate.dcr_quantile, options.workers)
        metrics |= found
    with timed("membership"):
        metrics |= membership_inference(train, held, synthetic_pool, options.attack_rows,
                                        options.attack_reference_rows, rngs["membership"],
                                        holdout_patients, train_patients, options.workers)
    with timed("attribute"):
        metrics |= attribute_inference(layout, options.sensitive, train, held, synthetic_pool, options.attack_rows,
                                       options.attack_reference_rows, rngs["attribute"], train_patients,
                                       holdout_patients, options.workers)
    with timed("utility"):
        predictions = None
        if options.target:
            found, predictions = utility_scores(layout, options.target, train, held, synthetic_pool,
                                                options.utility_rows, rngs["utility"], holdout_patients)
            metrics |= found
        else:
            metrics |= {"tstr": None, "trtr": None, "utility": {"skipped": "no target column (evaluation.target)"}}
    with timed("fairness"):
        metrics |= fairness_scores(layout, options.protected, predictions, train, synthetic_pool,
                                   options.suppress_below, train_patients)
    with timed("entities"):
        metrics |= entities.result()
    metrics["timings"] = timings
    metrics["gate"] = gate_verdict(metrics, gate)
    metrics["figures"] = figures
    return metrics


def _stream(scan: TableScan, schema: Schema, pool_positions: np.ndarray, identifiers: IdentifierCheck,
            copies: CopyCounter, entities: SyntheticEntities) -> pa.Table:
    """Read the synthetic rows once: feed every batch to the streamed checks, gather the pool's rows."""
    picked, offset = [], 0
    for raw in scan.batches():
        identifiers.add(raw)
        batch = conform(raw, schema, "synthetic")
        lo, hi = np.searchsorted(pool_positions, [offset, offset + batch.num_rows])
        picked.append(batch.take(pa.array(pool_positions[lo:hi] - offset)))
        copies.add(batch)
        entities.add(batch)
        offset += batch.num_rows
    empty = conform(scan.schema.empty_table(), schema, "synthetic")
    return pa.concat_tables([empty, *picked]).combine_chunks()


def _at(codes: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    return codes[rows] if codes is not None else None


def _patients(table: pa.Table, schema: Schema) -> np.ndarray | None:
    """Each row's patient as an integer code (``None`` without an entity key)."""
    if schema.entity_key is None or schema.entity_key not in table.column_names:
        return None
    return pc.dictionary_encode(table[schema.entity_key].combine_chunks()).indices.to_numpy(zero_copy_only=False)
