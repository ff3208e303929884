"""The synthesizer contract every model follows (scikit-learn style, RDT-style templates).

``fit(table, schema) -> self`` and ``sample(n, seed) -> table`` work on Arrow tables in
the extract's own types. The public methods validate, transform and restore types;
a subclass writes only ``_fit`` (on the model-ready matrix), ``_sample`` (a matrix from
a ``torch.Generator``) and ``_save`` / ``_load`` for its weights. Hyperparameters are set
in ``__init__`` and stored unchanged; learned state ends with ``_``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import torch

from synth import identifiers
from synth.artifact import VERSIONS_JSON, check_versions, library_versions, read_json
from synth.config import ColumnKind, PipelineConfig
from synth.errors import ModelError, SchemaError
from synth.frames import to_arrow, to_model_frame
from synth.io.atomic import atomic_dir, write_json_atomic, write_text_atomic
from synth.schema import Schema
from synth.transforms import TableTransformer

MODEL_JSON = "model.json"
CONFIG_JSON = "config.json"
SCHEMA_JSON = "schema.json"
IDENTIFIERS_JSON = "identifiers.json"


class Synthesizer(ABC):
    """Base class: a transformer plus a generative model over its matrix.

    Args:
        config: the pipeline configuration (model, privacy, transform settings, seed).
    """

    name: ClassVar[str]

    def __init__(self, config: PipelineConfig | None = None):
        self.config = config or PipelineConfig()

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, table: pa.Table, schema: Schema, **kwargs: Any) -> Synthesizer:
        """Learn the transforms and the model from ``table``.

        Keyword arguments (e.g. ``on_epoch``) are passed to the subclass's ``_fit``.
        """
        missing = [name for name in schema.names if name not in table.column_names]
        if missing:
            raise SchemaError(f"the table lacks schema columns {missing}")
        frame = to_model_frame(table, schema)
        self.schema_ = schema
        self.identifiers_ = identifiers.learn_formats(table, schema)
        self.transformer_ = TableTransformer(self.config.transforms, seed=self.config.seed).fit(frame, schema)
        matrix = self.transformer_.transform(frame, np.random.default_rng(self.config.seed))
        self._fit(matrix, **kwargs)
        return self

    @abstractmethod
    def _fit(self, matrix: np.ndarray, **kwargs: Any) -> None:
        """Fit the model to the transformed matrix."""

    # -- sampling --------------------------------------------------------------------------
    def sample(self, n: int, seed: int | np.random.SeedSequence = 0, start: int = 0) -> pa.Table:
        """``n`` synthetic rows with the extract's columns and exact types.

        Args:
            n: number of rows.
            seed: an int or a ``SeedSequence`` (chunk *k* of a run gets its own spawned one).
            start: number of the first row, so identifiers stay unique across chunks.
        """
        self._check_fitted()
        if n < 1:
            raise ValueError("n must be at least 1")
        sequence = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        generator = torch.Generator().manual_seed(int(sequence.generate_state(1, dtype=np.uint64)[0] >> 1))
        matrix = self._sample(n, generator)
        frame = self.transformer_.reverse_transform(matrix)
        for spec in self.schema_.of_kind(ColumnKind.IDENTIFIER):
            digits = self.identifiers_[spec.name]["digits"]
            frame[spec.name] = identifiers.fresh_ids(spec.arrow, digits, start, n).to_pandas()
        return to_arrow(frame, self.schema_)

    @abstractmethod
    def _sample(self, n: int, generator: torch.Generator) -> np.ndarray:
        """A (n, segments) float64 matrix drawn from the model."""

    # -- persistence -----------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write the model folder atomically (see :mod:`synth.artifact`)."""
        self._check_fitted()
        folder = Path(folder)
        with atomic_dir(folder) as tmp:
            write_json_atomic(tmp / MODEL_JSON, {"name": self.name, **self._describe()})
            write_text_atomic(tmp / CONFIG_JSON, self.config.model_dump_json(indent=2))
            write_text_atomic(tmp / SCHEMA_JSON, self.schema_.to_json())
            write_json_atomic(tmp / IDENTIFIERS_JSON, self.identifiers_)
            write_json_atomic(tmp / VERSIONS_JSON, library_versions())
            self.transformer_.save(tmp)
            self._save(tmp)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Synthesizer:
        """Load a model folder written by :meth:`save`, refusing incompatible versions."""
        folder = Path(folder)
        if not folder.is_dir():
            raise ModelError(f"model folder not found: {folder}")
        check_versions(folder)
        described = read_json(folder / MODEL_JSON)
        if described.get("name") != cls.name:
            raise ModelError(f"{folder} holds a {described.get('name')!r} model, not {cls.name!r}")
        self = cls(PipelineConfig.model_validate(read_json(folder / CONFIG_JSON)))
        self.schema_ = Schema.from_json((folder / SCHEMA_JSON).read_text(encoding="utf-8"))
        self.identifiers_ = read_json(folder / IDENTIFIERS_JSON)
        self.transformer_ = TableTransformer.load(folder)
        self._load(folder, described)
        return self

    def _describe(self) -> dict:
        """Extra constructor facts for ``model.json``."""
        return {}

    @abstractmethod
    def _save(self, folder: Path) -> None: ...

    @abstractmethod
    def _load(self, folder: Path, described: dict) -> None: ...

    def _check_fitted(self) -> None:
        if not hasattr(self, "transformer_"):
            raise ModelError(f"this {type(self).__name__} is not fitted; call fit() or load() first")
