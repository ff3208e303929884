"""Privacy by patient for a relational extract: a holdout of whole patients, and the flat checks per table.

**The holdout.** A patient is a row of the root table and every row under it, in every
table. The flat pipeline's rule picks the held-out patients
(:func:`synth.holdout.holdout_mask`: a seeded, stable hash of the root's primary key below
``evaluation.holdout_fraction``); each other table follows its parent row down the tree,
so a held-out patient's admissions, stays and events are all held out and the generator
never sees any of them.

**The checks**, per table, with the flat pipeline's functions and nothing rewritten: the
table's synthetic rows (keys and other identifiers left out, as the flat evaluation
leaves them out) against that table's training rows and holdout rows:

* exact copies against the holdout, scaled to the sizes
  (:func:`synth.evaluation.collisions.copies_against_holdout`), over every synthetic row;
* closeness, median and tail (:func:`synth.evaluation.distance.distance_scores`, Gower DCR);
* membership inference (:func:`synth.evaluation.membership.membership_inference`), its
  targets drawn as whole patients and scored per patient as well as per row: each row's
  patient is its root row, reached up the chain of foreign keys;
* the holdout's own overlap with the training rows
  (:func:`synth.evaluation.collisions.holdout_overlap`).

The flat gate (:func:`synth.evaluation.gate.gate_verdict`) judges each table's numbers with
its thresholds and messages; :mod:`synth.relational.gate` keeps its privacy checks.

Too few patients held out (fewer than :data:`MIN_HOLDOUT_PATIENTS`, e.g. a tiny extract or
``holdout_fraction: 0``) leaves no baseline: nothing is computed and the gate's privacy
check reads "unknown" and fails, saying so.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa

from synth.config import ColumnKind, EvaluationOptions, GateOptions
from synth.evaluation.collisions import CopyCounter, copies_against_holdout, holdout_overlap
from synth.evaluation.distance import distance_scores
from synth.evaluation.encoding import encode
from synth.evaluation.gate import gate_verdict
from synth.evaluation.membership import membership_inference
from synth.evaluation.samples import sample_indices
from synth.evaluation.tables import conform
from synth.holdout import holdout_mask
from synth.pii.rules import generalised_table
from synth.relational.evaluation import parent_index
from synth.relational.schema import RelationalSchema
from synth.schema import ColumnSpec, Schema

#: Fewest held-out patients the checks can use: the membership attack halves them by patient
#: into non-members it scores and a population reference, and needs at least two of each.
MIN_HOLDOUT_PATIENTS = 4
#: The flat gate's checks that concern privacy (its quality and direct identifier checks are not these).
PRIVACY_CHECKS = ("holdout", "exact_copies", "closeness", "closeness_tail", "membership_inference")
_STREAMS = ("pool", "distance", "membership")


def split_patients(
    tables: dict[str, pa.Table], schema: RelationalSchema, fraction: float, seed: int
) -> tuple[dict[str, pa.Table], dict[str, pa.Table]]:
    """(training tables, holdout tables): about ``fraction`` of the root rows, and all their descendants, held out.

    The root rows are chosen by the flat pipeline's rule (:func:`synth.holdout.holdout_mask`)
    with the root's primary key as the entity key (its row numbers without one), so the split
    is a pure function of the patients' keys, the fraction and the seed.
    """
    held = held_out_rows(tables, schema, fraction, seed)
    training = {name: tables[name].filter(pa.array(~held[name])) for name in schema.order}
    holdout = {name: tables[name].filter(pa.array(held[name])) for name in schema.order}
    return training, holdout


def held_out_rows(tables: dict[str, pa.Table], schema: RelationalSchema, fraction: float, seed: int
                  ) -> dict[str, np.ndarray]:
    """Per table, a boolean mask of its held-out rows (a child's row follows its parent's)."""
    root = tables[schema.root]
    key = schema.primary_keys.get(schema.root)
    spec = Schema(columns=(ColumnSpec(key, ColumnKind.IDENTIFIER, str(root.schema.field(key).type)),),
                  entity_key=key) if key else Schema(columns=())
    masks = {schema.root: holdout_mask(root, spec, fraction, seed) if fraction > 0 else np.zeros(root.num_rows, bool)}
    for relation in schema.relations:  # parents before children
        masks[relation.child] = masks[relation.parent][parent_index(tables, relation)]
    return masks


def patients_of(tables: dict[str, pa.Table], schema: RelationalSchema) -> dict[str, np.ndarray]:
    """Per table, each row's patient: the position of its root row (its ancestor in the root table)."""
    patients = {schema.root: np.arange(tables[schema.root].num_rows)}
    for relation in schema.relations:  # parents before children
        patients[relation.child] = patients[relation.parent][parent_index(tables, relation)]
    return patients


def privacy_by_patient(
    training: dict[str, pa.Table],
    holdout: dict[str, pa.Table],
    synthetic: dict[str, pa.Table],
    schema: RelationalSchema,
    table_schemas: dict[str, Schema],
    options: EvaluationOptions | None = None,
    gate: GateOptions | None = None,
    seed: int = 0,
) -> dict:
    """Every table's privacy numbers and the flat gate's privacy checks on them.

    Args:
        training: the rows the generator was trained on, one table per table of ``schema``.
        holdout: the held-out patients' rows (:func:`split_patients`), never trained on.
        synthetic: the synthetic tables.
        table_schemas: each table's columns with its keys as identifiers
            (``model.tables_[name].schema``); identifiers are left out of every comparison.
        options: sample sizes (``distance_rows``, ``attack_rows``, ``attack_reference_rows``).
        gate: the thresholds.
        seed: seeds the samples; each table draws from its own streams.

    Returns:
        ``{"patients": {"training": n, "holdout": n}, "unknown": reason or None,
        "tables": {table: {the flat metrics' privacy entries, "checks": [...]}}}``; ``unknown``
        says why nothing was computed (too few patients held out).
    """
    options, gate = options or EvaluationOptions(), gate or GateOptions()
    counts = {"training": training[schema.root].num_rows, "holdout": holdout[schema.root].num_rows}
    out: dict = {"patients": counts, "unknown": None, "tables": {}}
    if counts["holdout"] < MIN_HOLDOUT_PATIENTS:
        out["unknown"] = (
            f"only {counts['holdout']} of {counts['training'] + counts['holdout']:,} patients were held out "
            f"(evaluation.holdout_fraction {options.holdout_fraction:g}); at least {MIN_HOLDOUT_PATIENTS} are needed "
            "for real rows the generator never saw to compare with"
        )
        return out
    train_patients, holdout_patients = patients_of(training, schema), patients_of(holdout, schema)
    for name, stream in zip(schema.order, np.random.SeedSequence(seed).spawn(len(schema.order))):
        rngs = dict(zip(_STREAMS, (np.random.default_rng(s) for s in stream.spawn(len(_STREAMS)))))
        out["tables"][name] = table_privacy(
            training[name], holdout[name], synthetic[name], table_schemas[name], options, gate, rngs,
            train_patients[name], holdout_patients[name],
        )
    return out


def table_privacy(
    training: pa.Table, holdout: pa.Table, synthetic: pa.Table, spec: Schema, options: EvaluationOptions,
    gate: GateOptions, rngs: dict[str, np.random.Generator], train_patients: np.ndarray, holdout_patients: np.ndarray,
) -> dict:
    """One table's privacy numbers, named as in the flat ``metrics.json``, and the flat gate's checks on them."""
    training = conform(generalised_table(training, spec.direct_identifiers), spec, "training")
    holdout = conform(generalised_table(holdout, spec.direct_identifiers), spec, "holdout")
    synthetic = conform(synthetic, spec, "synthetic")
    metrics: dict = {"rows": synthetic.num_rows, "real_rows": training.num_rows, "holdout_rows": holdout.num_rows}
    if not spec.modelled:  # keys only: fresh in the synthetic rows, and never compared
        metrics["checks"] = [{"name": name, "passed": True, "value": None, "threshold": None,
                              "message": "nothing to compare: the table holds only keys, which are fresh"}
                             for name in PRIVACY_CHECKS]
        return metrics
    if holdout.num_rows == 0 or training.num_rows == 0 or synthetic.num_rows == 0:
        metrics["holdout"] = {"given": False}
        metrics["checks"] = [_empty(name, metrics) for name in PRIVACY_CHECKS]
        return metrics
    overlap = holdout_overlap(training, holdout, dataclasses.replace(spec, entity_key=None))  # rows, every column
    metrics["holdout"] = {"given": True} | overlap
    copies = CopyCounter({"training": training, "holdout": holdout}, spec)
    copies.add(synthetic)  # every synthetic row
    metrics |= copies_against_holdout(training, holdout, copies, spec)
    # The sampled checks draw from a bounded pool of synthetic rows, as the flat evaluation does.
    pool = synthetic.take(sample_indices(synthetic.num_rows, max(options.distance_rows, options.attack_reference_rows),
                                         rngs["pool"]))
    _, (train, held, pooled) = encode(spec, training, holdout, pool)
    found, _ = distance_scores(train, held, pooled, options.distance_rows, rngs["distance"], gate.dcr_quantile)
    metrics |= found
    metrics |= membership_inference(train, held, pooled, options.attack_rows, options.attack_reference_rows,
                                    rngs["membership"], holdout_patients, train_patients)
    verdict = gate_verdict(metrics, gate)
    metrics["checks"] = [c for c in verdict["checks"] if c["name"] in PRIVACY_CHECKS]
    return metrics


def _empty(name: str, metrics: dict) -> dict:
    side = "synthetic" if metrics["rows"] == 0 else ("training" if metrics["real_rows"] == 0 else "holdout")
    return {"name": name, "passed": False, "value": None, "threshold": None,
            "message": f"unknown: the table has no {side} rows to compare"}
