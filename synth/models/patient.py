"""The patient-level synthesizer: a patient VAE, and a row VAE conditioned on the patient.

Design (and why). Hospital extracts are patients with a variable number of rows. We
model them in two levels (:mod:`synth.entity`):

1. a **patient VAE** over one row per patient - the static attributes (sex, date of
   birth, ethnicity...), the number of rows, and the anchor dates - so static attributes
   are generated once per synthetic patient and are constant across its rows by
   construction, and rows per patient follow the real distribution;
2. a **conditional row VAE** over the row-level attributes, conditioned on the
   patient's whole encoded vector and on the row's position in the patient (relative
   position, first, last, size), with dates stored as steps after their predecessor or
   after the patient's anchor, so order and realistic lengths of stay come back.

A sequence model (RNN/transformer over a patient's rows) would also capture how one
row depends on the previous ones; we chose the two-level VAE because it reuses the
row model unchanged, trains on rows in parallel (no sequential steps, long patients are
not slow), and makes patient-level DP exact with stock Opacus: under DP the row model's
unit is the patient - a batch holds whole patients (padded, masked), every layer keeps
the patient as its first dimension, and ghost clipping bounds each *patient's* gradient.
What it does not capture: dependence between a patient's rows beyond their shared
patient attributes and position (e.g. a lab value drifting visit to visit).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from synth import dp_domain, identifiers
from synth.artifact import read_json
from synth.config import AgeConstraint, InequalityConstraint
from synth.constraints import columns_of, violations
from synth.entity import (
    ANCHOR,
    POSITION_FEATURES,
    ROWS,
    EntityPlan,
    Levels,
    decode_static,
    join_levels,
    level_schemas,
    outside_date_ranges,
    repair_orders,
    plan_entities,
    position_features,
    split_levels,
)
from synth.errors import ConfigError, SchemaError
from synth.frames import to_model_frame
from synth.io.atomic import write_json_atomic
from synth.models.base import REJECTION_ROUNDS, Synthesizer, summary_report
from synth.models.table_vae import DOMAIN_JSON, TableVAE
from synth.models.training import EpochCallback, PatientUnits, Units, fit_fingerprint
from synth.privacy import (
    PATIENT_SHARE,
    BudgetPlan,
    PrivacyReport,
    Releases,
    combine,
    plan_budget,
    secure_numpy,
    secure_torch,
)
from synth.schema import Schema

ENTITY_JSON = "entity.json"
PATIENTS, ROWS_DIR = "patients", "rows"
FIRST_BATCH = 4_096
MAX_LOG_ROWS = math.log(1_000_000)  # an overflow guard on rows per patient, not a model bound


class PatientSynthesizer(Synthesizer):
    """Two-level VAE for extracts with several rows per patient (see the module docstring)."""

    name = "patient-vae"

    # -- fitting ---------------------------------------------------------------------------
    def _fit(
        self, table: pa.Table, on_epoch: EpochCallback | None = None, checkpoint_dir: str | Path | None = None, **_: Any
    ) -> None:
        schema, config = self.schema_, self.config
        if schema.entity_key is None:
            raise ConfigError("the patient-level model needs an entity key: set entity_key in the config")
        keys = table[schema.entity_key]
        if keys.null_count:
            raise SchemaError(f"entity key {schema.entity_key!r} is missing in {keys.null_count} rows")
        keys = keys.to_numpy(zero_copy_only=False)
        frame = to_model_frame(table, schema)
        self.plan_ = plan_entities(frame, keys, schema, config)
        levels = split_levels(frame, keys, self.plan_)
        patient_schema, row_schema = level_schemas(schema, self.plan_)
        sizes = np.bincount(levels.patient_of_row)
        fingerprint = fit_fingerprint(table, config) if checkpoint_dir is not None else None
        budget = patient_domain = row_domain = None
        if config.privacy.enabled:
            releases = Releases(checkpoint_dir, fingerprint or "")
            count = releases.unit_count(len(sizes), config.privacy)
            budget = plan_budget(config.privacy, count, {"patients": PATIENT_SHARE, "rows": 1 - PATIENT_SHARE})
            patient_domain, row_domain = self._release_domains(levels, patient_schema, row_schema, budget, releases)
            fingerprint = releases.identity() if fingerprint is not None else None

        self.patients_ = TableVAE(config, config.seed).fit_transformer(levels.patients, patient_schema, patient_domain)
        patient_matrix = self.patients_.matrix(levels.patients)
        patient_report = self.patients_.train(
            Units(torch.as_tensor(patient_matrix, dtype=torch.float32)),
            budget.trainings["patients"] if budget else None,
            on_epoch,
            _sub(checkpoint_dir, PATIENTS),
            stage="patients",
            fingerprint=fingerprint,
        )

        self.rows_ = TableVAE(config, config.seed + 1, condition_dim=self.patients_.input_dim + POSITION_FEATURES)
        self.rows_.fit_transformer(levels.rows, row_schema, row_domain)
        row_matrix = torch.as_tensor(self.rows_.matrix(levels.rows), dtype=torch.float32)
        condition = self._condition(patient_matrix, levels.patient_of_row, levels.position)
        if budget:  # the contribution bound's subset of a long patient's rows touches real data: secure draws
            limit = config.entity.max_rows_per_entity
            units = PatientUnits(row_matrix, condition, torch.as_tensor(sizes), limit, secure_torch())
        else:
            units = Units(row_matrix, condition, groups=torch.as_tensor(levels.patient_of_row))
        row_report = self.rows_.train(
            units,
            budget.trainings["rows"] if budget else None,
            on_epoch,
            _sub(checkpoint_dir, ROWS_DIR),
            "rows",
            fingerprint,
        )

        parts = {"patients": patient_report.privacy, "rows": row_report.privacy}
        self.privacy_ = PrivacyReport(False)
        if budget is not None:
            domains = {PATIENTS: f"{PATIENTS}/{DOMAIN_JSON}", ROWS_DIR: f"{ROWS_DIR}/{DOMAIN_JSON}"}
            self.privacy_ = combine(budget, parts, "patient", domains)
        self.training_ = summary_report([patient_report, row_report], self.privacy_)

    def _release_domains(
        self, levels: Levels, patient_schema: Schema, row_schema: Schema, budget: BudgetPlan, releases: Releases
    ) -> tuple[dp_domain.DPDomain, dp_domain.DPDomain]:
        """The DP domains of the patient and row tables, sharing the transforms' budget by columns.

        Rows per patient are bounded by the public contribution bound, not by a DP quantile
        of a handful of patients. Declared public values and ranges apply to the columns
        that keep their meaning at their level (and a date's range to its anchor); a date
        stored as steps after another is a new quantity, learned with DP.
        """
        config, plan = self.config, self.plan_
        linked = {link.column for link in plan.links}
        overrides = {k: v for k, v in config.columns.items() if k not in linked}
        overrides |= {
            a: config.columns[a[len(ANCHOR) :]] for a in plan.anchors if a[len(ANCHOR) :] in config.columns and a not in linked
        }
        epsilon, delta = budget.transforms
        declared = dp_domain.declared_public(patient_schema.modelled, overrides)
        rows_per_patient = (0.0, math.log(config.entity.max_rows_per_entity))
        patient_public = dp_domain.Public(declared.values, {**declared.ranges, ROWS: rows_per_patient})
        row_public = dp_domain.declared_public(row_schema.modelled, overrides)
        patient_weight = sum(dp_domain.column_weights(patient_schema.modelled, patient_public).values())
        share = patient_weight / (patient_weight + sum(dp_domain.column_weights(row_schema.modelled, row_public).values()))

        def patients() -> dict:
            return dp_domain.learn_domain(
                levels.patients, patient_schema.modelled, epsilon * share, delta * share, secure_numpy(),
                public=patient_public,
            ).to_dict()

        def rows() -> dict:
            return dp_domain.learn_domain(
                levels.rows, row_schema.modelled, epsilon * (1 - share), delta * (1 - share), secure_numpy(),
                units=levels.patient_of_row, max_values_per_unit=config.entity.max_rows_per_entity, public=row_public,
            ).to_dict()

        return (
            dp_domain.DPDomain.from_dict(releases.get("domain:patients", patients)),
            dp_domain.DPDomain.from_dict(releases.get("domain:rows", rows)),
        )

    def _condition(self, patient_matrix: np.ndarray, patient_of_row: np.ndarray, position: np.ndarray) -> torch.Tensor:
        """(rows, E): each row's patient vector (as the patient network sees it) and its position."""
        patient_vectors = self.patients_.encode_inputs(patient_matrix)
        index = torch.as_tensor(patient_of_row, dtype=torch.long)
        return torch.cat([patient_vectors[index], torch.as_tensor(position)], dim=1)

    # -- sampling --------------------------------------------------------------------------
    def _sample_frame(self, n: int, generator: torch.Generator, start: int) -> pd.DataFrame:
        patients, patient_matrix, sizes = self._draw_patients(n, generator)
        codes = np.repeat(np.arange(len(sizes)), sizes)
        condition = self._condition(patient_matrix, codes, position_features(codes))
        rows = self.rows_.reverse(self.rows_.generate(len(codes), generator, condition))
        frame = join_levels(patients, rows, codes, self.plan_)

        # Rows whose dates left the real range (a step drawn for another kind of patient) or
        # that break a declared constraint are drawn again, before orders are repaired: one
        # stray date would otherwise drag its patient's later dates with it.
        row_rules = [c for c in self._rejection_constraints() if not set(columns_of(c)) <= set(self.plan_.static)]
        row_dates = [name for name in self.plan_.row if name in self.plan_.date_ranges]
        for _ in range(REJECTION_ROUNDS if row_rules or row_dates else 0):
            bad = outside_date_ranges(frame, self.plan_, row_dates)
            if row_rules:
                bad |= violations(repair_orders(frame, codes, self.plan_), row_rules)
            if not bad.any():
                break
            redraw = self.rows_.reverse(self.rows_.generate(int(bad.sum()), generator, condition[torch.as_tensor(bad)]))
            rows.loc[bad, :] = redraw.set_axis(rows.index[bad]).astype(rows.dtypes.to_dict())
            frame = join_levels(patients, rows, codes, self.plan_)
        if self.plan_.date_ranges:  # what rejection left outside the real range is clipped into it
            frame = join_levels(patients, rows, codes, self.plan_, clip=True)
        frame = repair_orders(frame, codes, self.plan_)

        key = self.schema_[self.plan_.key]
        ids = identifiers.fresh_values(key, self.identifiers_[key.name], start, len(sizes))
        frame[key.name] = ids.to_numpy(zero_copy_only=False)[codes]
        if self.plan_.order_by:  # a patient's rows in date order, as in the extract
            order = np.lexsort((frame[self.plan_.order_by].to_numpy(), codes))
            frame = frame.iloc[order].reset_index(drop=True)
        return frame

    def _draw_patients(self, n: int, generator: torch.Generator) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """Synthetic patients until their rows reach ``n``; the last one is cut to fit exactly."""
        frames, matrices, drawn_rows = [], [], 0
        batch = min(FIRST_BATCH, n)
        while drawn_rows < n:
            matrix = self.patients_.generate(batch, generator)
            frame = self._reject_patients(self.patients_.reverse(matrix), matrix, generator)
            frames.append(frame)
            matrices.append(matrix)
            drawn_rows += int(_row_counts(frame[ROWS]).sum())
            mean = drawn_rows / sum(len(f) for f in frames)
            batch = max(64, int((n - drawn_rows) / mean * 1.1) + 1)
        patients = pd.concat(frames, ignore_index=True)
        matrix = np.concatenate(matrices)
        sizes = _row_counts(patients[ROWS])
        keep = int(np.searchsorted(np.cumsum(sizes), n)) + 1
        sizes = sizes[:keep]
        sizes[-1] -= sizes.sum() - n
        return patients.iloc[:keep].reset_index(drop=True), matrix[:keep], sizes

    def _reject_patients(self, frame: pd.DataFrame, matrix: np.ndarray, generator: torch.Generator) -> pd.DataFrame:
        """Redraw patients whose static attributes break a constraint or leave the real date
        range (in place in ``matrix``)."""
        rules = [c for c in self._rejection_constraints() if set(columns_of(c)) <= set(self.plan_.static)]
        static_dates = [name for name in self.plan_.static if name in self.plan_.date_ranges]
        for _ in range(REJECTION_ROUNDS if rules or static_dates else 0):
            decoded = decode_static(frame, self.plan_)
            bad = violations(decoded, rules) | outside_date_ranges(decoded, self.plan_, static_dates)
            if not bad.any():
                break
            matrix[bad] = self.patients_.generate(int(bad.sum()), generator)
            frame = self.patients_.reverse(matrix)
        return frame

    def _rejection_constraints(self) -> list:
        """Declared constraints not held by construction (links and derived ages are)."""
        linked = {(link.parent, link.column) for link in self.plan_.links}
        return [
            c
            for c in self.config.constraints
            if not isinstance(c, AgeConstraint)
            and not (isinstance(c, InequalityConstraint) and not c.strict and (c.low, c.high) in linked)
        ]

    # -- persistence -----------------------------------------------------------------------
    def _save(self, folder: Path) -> None:
        write_json_atomic(folder / ENTITY_JSON, self.plan_.to_dict())
        self.patients_.save(folder / PATIENTS)
        self.rows_.save(folder / ROWS_DIR)

    def _load(self, folder: Path) -> None:
        self.plan_ = EntityPlan.from_dict(read_json(folder / ENTITY_JSON))
        self.patients_ = TableVAE.load(folder / PATIENTS, self.config, self.config.seed)
        condition_dim = self.patients_.input_dim + POSITION_FEATURES
        self.rows_ = TableVAE.load(folder / ROWS_DIR, self.config, self.config.seed + 1, condition_dim)


def _row_counts(log_rows: pd.Series) -> np.ndarray:
    """Rows per patient from their log; the transforms keep the log inside the trained range."""
    logs = pd.to_numeric(log_rows, errors="coerce").fillna(0).to_numpy()
    values = np.exp(np.clip(logs, 0, MAX_LOG_ROWS))
    return np.maximum(np.round(values), 1).astype(np.int64)


def _sub(folder: str | Path | None, name: str) -> Path | None:
    return None if folder is None else Path(folder) / name
