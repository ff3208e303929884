"""The synthesizer contract every model follows (scikit-learn style, RDT-style templates).

``fit(table, schema) -> self`` and ``sample(n, seed) -> table`` work on Arrow tables in
the extract's own types. The public methods validate, fill identifiers and restore
types; a subclass writes only ``_fit`` (from the table), ``_sample_frame`` (a frame of
the modelled columns from a ``torch.Generator``) and ``_save`` / ``_load``.
Hyperparameters are set in ``__init__`` and stored unchanged; learned state ends with
``_``. Constraints that are not enforced by construction are enforced here by
rejection: rows that break any of them are drawn again, up to ``REJECTION_ROUNDS`` times.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Set
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from pydantic import ValidationError

from synth import identifiers
from synth.artifact import VERSIONS_JSON, check_plain_files, check_versions, library_versions, read_json
from synth.config import AgeConstraint, ColumnKind, PipelineConfig
from synth.constraints import check_columns
from synth.entity import derive_age
from synth.errors import ModelError, SchemaError
from synth.frames import to_arrow
from synth.io.atomic import atomic_dir, write_json_atomic, write_text_atomic
from synth.models.training import TrainingReport
from synth.pii.categories import PiiHandling
from synth.pii.rules import generalised_frame, generalised_table
from synth.privacy import PrivacyReport
from synth.schema import Schema

MODEL_JSON = "model.json"
CONFIG_JSON = "config.json"
SCHEMA_JSON = "schema.json"
IDENTIFIERS_JSON = "identifiers.json"
TRAINING_JSON = "training.json"
PRIVACY_JSON = "privacy.json"
REJECTION_ROUNDS = 20
_FAKE_STREAM = 0xFA4E  # the child seed of a chunk's fake identifier values


class Synthesizer(ABC):
    """Base class of every synthesizer.

    Args:
        config: the pipeline configuration (model, privacy, transform settings, seed).
    """

    name: ClassVar[str]

    def __init__(self, config: PipelineConfig | None = None):
        self.config = config or PipelineConfig()

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, table: pa.Table, schema: Schema, **kwargs: Any) -> Synthesizer:
        """Learn the model from ``table``; keyword arguments (``on_epoch``, ``checkpoint_dir``) go to ``_fit``."""
        missing = [name for name in schema.names if name not in table.column_names]
        if missing:
            raise SchemaError(f"the table lacks schema columns {missing}")
        check_columns(self.config.constraints, schema.names)
        self.schema_ = schema
        # Generalised identifiers (a date of birth, a postcode) reach the model generalised only.
        table = generalised_table(table, schema.direct_identifiers)
        self.identifiers_ = identifiers.learn_formats(
            table, schema, self.config.pii.locale, private=self.config.privacy.enabled
        )
        self._fit(table, **kwargs)
        return self

    @abstractmethod
    def _fit(self, table: pa.Table, **kwargs: Any) -> None:
        """Fit the model; set ``training_`` (a summary) and ``privacy_``."""

    # -- sampling --------------------------------------------------------------------------
    def sample(
        self,
        n: int,
        seed: int | np.random.SeedSequence = 0,
        start: int = 0,
        avoid: Mapping[str, Set[str]] | None = None,
    ) -> pa.Table:
        """``n`` synthetic rows with the extract's columns and exact types.

        Args:
            n: number of rows.
            seed: an int or a ``SeedSequence`` (chunk *k* of a run gets its own spawned one).
            start: number of the first row, so identifiers stay unique across chunks.
            avoid: per faked direct identifier column, its real values (normalised,
                :func:`synth.pii.values.normalised`): no fake equals one of them. Ignored under
                DP, where the output may depend on the real data only through the model: fake
                names are then invented, and the other fakes come from reserved namespaces.
        """
        self._check_fitted()
        if n < 1:
            raise ValueError("n must be at least 1")
        sequence = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        generator = torch.Generator().manual_seed(int(sequence.generate_state(1, dtype=np.uint64)[0] >> 1))
        frame = self._generalise(self._sample_frame(n, generator, start))
        fake_seed = np.random.SeedSequence(sequence.entropy, spawn_key=(*sequence.spawn_key, _FAKE_STREAM))
        fakes = np.random.default_rng(fake_seed)
        self._fill_identifiers(frame, start, n, fakes, {} if self.config.privacy.enabled else avoid or {})
        return to_arrow(frame, self.schema_)

    def _generalise(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Generalised identifiers generalised again (a model draws any day of birth), and the
        ages derived from a generalised birth date derived again, so they agree with it."""
        rules = self.schema_.direct_identifiers
        frame = generalised_frame(frame, rules)
        generalised = {r.column for r in rules if r.handling == PiiHandling.GENERALISE.value}
        for rule in self.config.constraints:
            if isinstance(rule, AgeConstraint) and rule.birth in generalised and rule.column in frame:
                frame[rule.column] = derive_age(frame[rule.birth], frame[rule.at], rule.top_code)
        return frame

    def _fill_identifiers(
        self, frame: pd.DataFrame, start: int, n: int, rng: np.random.Generator, avoid: Mapping[str, Set[str]]
    ) -> None:
        """Fresh values for the identifier columns the model did not set; one per patient where
        the real column is constant within every patient (the key is filled first)."""
        key = self.schema_.entity_key
        for spec in sorted(self.schema_.of_kind(ColumnKind.IDENTIFIER), key=lambda s: s.name != key):
            if spec.name in frame:
                continue
            fmt = self.identifiers_[spec.name]
            options = {"rng": rng, "locale": self.config.pii.locale, "avoid": avoid.get(spec.name),
                       "invented": self.config.privacy.enabled}
            if fmt.get("per_entity") and key in frame:
                codes, patients = pd.factorize(frame[key])
                values = identifiers.fresh_values(spec, fmt, start, len(patients), **options)
                frame[spec.name] = values.to_numpy(zero_copy_only=False)[codes]
            else:
                values = identifiers.fresh_values(spec, fmt, start, n, **options)
                frame[spec.name] = values.to_numpy(zero_copy_only=False)

    @abstractmethod
    def _sample_frame(self, n: int, generator: torch.Generator, start: int) -> pd.DataFrame:
        """A frame of ``n`` rows of the modelled columns (and any identifier the model sets itself)."""

    def _rejection_constraints(self) -> list:
        """Constraints the model does not enforce by construction (checked by rejection)."""
        return list(self.config.constraints)

    # -- persistence -----------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write the model folder atomically (see :mod:`synth.artifact`)."""
        self._check_fitted()
        folder = Path(folder)
        with atomic_dir(folder) as tmp:
            write_json_atomic(tmp / MODEL_JSON, {"name": self.name})
            write_text_atomic(tmp / CONFIG_JSON, self.config.model_dump_json(indent=2))
            write_text_atomic(tmp / SCHEMA_JSON, self.schema_.to_json())
            write_json_atomic(tmp / IDENTIFIERS_JSON, self.identifiers_)
            write_json_atomic(tmp / VERSIONS_JSON, library_versions())
            write_json_atomic(tmp / TRAINING_JSON, self.training_.to_dict())
            write_json_atomic(tmp / PRIVACY_JSON, self.privacy_.to_dict())
            self._save(tmp)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Synthesizer:
        """Load a model folder written by :meth:`save`, refusing incompatible versions."""
        folder = Path(folder)
        if not folder.is_dir():
            raise ModelError(f"model folder not found: {folder}")
        check_plain_files(folder)
        check_versions(folder)
        described = read_json(folder / MODEL_JSON)
        if described.get("name") != cls.name:
            raise ModelError(f"{folder} holds a {described.get('name')!r} model, not {cls.name!r}")
        try:
            config = PipelineConfig.model_validate(read_json(folder / CONFIG_JSON))
        except ValidationError as exc:
            problems = "; ".join(".".join(str(p) for p in e["loc"]) + ": " + e["msg"] for e in exc.errors())
            raise ModelError(
                f"{folder / CONFIG_JSON} does not hold a config this version reads ({problems}); "
                "it was saved by another version of synth-pipeline: retrain the model"
            ) from None
        self = cls(config)
        self.schema_ = Schema.from_json((folder / SCHEMA_JSON).read_text(encoding="utf-8"))
        self.identifiers_ = read_json(folder / IDENTIFIERS_JSON)
        training = read_json(folder / TRAINING_JSON)
        training["privacy"] = PrivacyReport(**training["privacy"])
        training["history"] = []  # kept in the file; not needed to sample
        self.training_ = TrainingReport(**training)
        self.privacy_ = PrivacyReport(**read_json(folder / PRIVACY_JSON))
        self._load(folder)
        return self

    @abstractmethod
    def _save(self, folder: Path) -> None: ...

    @abstractmethod
    def _load(self, folder: Path) -> None: ...

    def _check_fitted(self) -> None:
        if not hasattr(self, "training_"):
            raise ModelError(f"this {type(self).__name__} is not fitted; call fit() or load() first")


def summary_report(reports: list[TrainingReport], privacy: PrivacyReport) -> TrainingReport:
    """One training summary for a model that trained several networks (seconds add up)."""
    last = reports[-1]
    seconds = sum(r.seconds for r in reports)
    rows_epochs = sum(r.rows * (r.epochs_run - r.resumed_from_epoch) for r in reports)
    return TrainingReport(
        device=last.device,
        rows=last.rows,
        epochs_run=last.epochs_run,
        best_epoch=last.best_epoch,
        stopped_early=last.stopped_early,
        seconds=seconds,
        rows_per_second=rows_epochs / seconds if seconds > 0 else 0.0,
        history=[h for r in reports for h in r.history],
        privacy=privacy,
        resumed_from_epoch=last.resumed_from_epoch,
    )
