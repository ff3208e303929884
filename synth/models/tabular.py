"""What the non-neural synthesizers share: one plain RDT space, column marginals, one template.

The baselines (:mod:`~synth.models.marginals`, :mod:`~synth.models.copula`,
:mod:`~synth.models.pca`, :mod:`~synth.models.smote`) model the table in one space, set up
like the VAE's (:class:`~synth.transforms.TableTransformer`, same bounded fit sample, same
reverse path back to the extract's types) except that a number or a date stays one float
(RDT ``FloatFormatter``, the timestamp encoder) instead of being split into GMM modes: a
copula, a PCA and an interpolation need a value's order and scale, not its mode. So every
modelled column is a *block* of segments:

* a category or boolean: one discrete label (null a category of its own);
* a number or date: one continuous value and, when the column has nulls, a discrete
  ``.is_null`` flag (RDT fills the value of a null row with the mean; the flag restores it).

None of them has differential privacy: under ``privacy.epsilon`` they refuse to fit. They
model rows: with an entity key every synthetic row gets a patient of its own.
"""

from __future__ import annotations

import io
import time
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from rdt.transformers import FloatFormatter, LabelEncoder
from scipy import stats
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from synth.config import ColumnKind
from synth.constraints import violations
from synth.errors import ConfigError, ModelError
from synth.frames import to_model_frame
from synth.io.atomic import write_bytes_atomic, write_json_atomic
from synth.models.base import MODEL_JSON, REJECTION_ROUNDS, Synthesizer
from synth.models.training import TrainingReport
from synth.privacy import PrivacyReport
from synth.rdt_fixes import StableTimestampEncoder
from synth.schema import ColumnSpec
from synth.transforms import Segment, TableTransformer

STATE_NPZ = "state.npz"
#: points of each numeric column's empirical quantile function (a marginal's whole description)
QUANTILES = 513
_FIT_STREAM = 0xBA5E  # the child seed of a baseline's own fitting draws (the transformer has its own)


class PlainTransformer(TableTransformer):
    """The VAE's transformer with each number and date kept as one float (see the module doc)."""

    def _transformer_for(self, spec: ColumnSpec, values: pd.Series, position: int):
        if spec.kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
            return LabelEncoder(missing_value_encoding="new_category")
        if spec.kind is ColumnKind.NUMERICAL:
            return FloatFormatter(
                missing_value_generation="from_column", learn_rounding_scheme=True, enforce_min_max_values=True
            )
        return StableTimestampEncoder(missing_value_generation="from_column", enforce_min_max_values=True)

    def _value_segments(self, spec: ColumnSpec, transformer) -> list[Segment]:
        """A number or date is one float (its order and scale kept), not a mode and a value within it."""
        return [Segment(spec.name, spec.name, "continuous")]


@dataclass(frozen=True)
class Block:
    """One modelled column's segments: its value (numbers, dates) and its label or null flag."""

    source: str
    value: int | None  # matrix column of the continuous value
    label: int | None  # matrix column of the category label or the is_null flag
    classes: int  # classes of ``label`` (0 without one)


def blocks(segments: list[Segment]) -> list[Block]:
    """The segments grouped by modelled column, in order."""
    grouped: dict[str, dict[str, int]] = {}
    classes: dict[str, int] = {}
    for i, segment in enumerate(segments):
        role = "value" if segment.kind == "continuous" else "label"
        grouped.setdefault(segment.source, {})[role] = i
        if segment.kind == "discrete":
            classes[segment.source] = segment.classes
    return [Block(s, g.get("value"), g.get("label"), classes.get(s, 0)) for s, g in grouped.items()]


def nulls(matrix: np.ndarray, block: Block) -> np.ndarray:
    """Which rows of ``matrix`` hold a null in a number's or date's ``block``."""
    if block.value is None or block.label is None:
        return np.zeros(len(matrix), dtype=bool)
    return matrix[:, block.label] > 0.5


class Marginals:
    """Every column's own distribution, and the map between a matrix and uniform scores.

    A category's marginal is its frequency (null included); a number's is its share of
    nulls plus the empirical quantile function of its values (``QUANTILES`` points,
    linearly interpolated). :meth:`to_uniform` puts each value at its place in (0, 1):
    nulls first, then values by mid-rank; a category anywhere in its own interval, drawn
    uniformly (so ties do not pile up), as RDT's ``UniformEncoder`` does. :meth:`from_uniform`
    is the inverse: a uniform score per column back to its segments.
    """

    def __init__(self, segments: list[Segment]):
        self.blocks = blocks(segments)
        self.width = len(segments)

    def fit(self, matrix: np.ndarray) -> Marginals:
        self.arrays_: dict[str, np.ndarray] = {}
        for j, block in enumerate(self.blocks):
            if block.value is None:
                counts = np.bincount(matrix[:, block.label].astype(np.intp), minlength=block.classes)
                self.arrays_[f"probs_{j}"] = counts / counts.sum()
                continue
            missing = nulls(matrix, block)
            values = matrix[~missing, block.value]
            grid = np.quantile(values, np.linspace(0, 1, QUANTILES)) if len(values) else np.zeros(QUANTILES)
            self.arrays_[f"quantiles_{j}"] = grid
            self.arrays_[f"null_share_{j}"] = np.array(missing.mean())
        return self

    def to_uniform(self, matrix: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(n, S) matrix -> (n, columns) scores in (0, 1)."""
        scores = np.empty((len(matrix), len(self.blocks)))
        for j, block in enumerate(self.blocks):
            if block.value is None:
                probs = self.arrays_[f"probs_{j}"]
                labels = matrix[:, block.label].astype(np.intp)
                below = np.concatenate([[0.0], np.cumsum(probs)[:-1]])
                scores[:, j] = below[labels] + probs[labels] * rng.random(len(matrix))
                continue
            share = float(self.arrays_[f"null_share_{j}"])
            missing = nulls(matrix, block)
            ranks = (stats.rankdata(matrix[~missing, block.value]) - 0.5) / max(int((~missing).sum()), 1)
            scores[missing, j] = share * rng.random(int(missing.sum()))
            scores[~missing, j] = share + (1 - share) * ranks
        return scores

    def from_uniform(self, scores: np.ndarray) -> np.ndarray:
        """(n, columns) scores in [0, 1] -> (n, S) matrix, each column from its own marginal."""
        matrix = np.zeros((len(scores), self.width))
        for j, block in enumerate(self.blocks):
            u = scores[:, j]
            if block.value is None:
                cumulative = np.cumsum(self.arrays_[f"probs_{j}"])
                matrix[:, block.label] = np.minimum(np.searchsorted(cumulative, u, side="right"), block.classes - 1)
                continue
            share = float(self.arrays_[f"null_share_{j}"])
            within = np.clip((u - share) / (1 - share), 0, 1) if share < 1 else np.zeros_like(u)
            grid = self.arrays_[f"quantiles_{j}"]
            matrix[:, block.value] = np.interp(within, np.linspace(0, 1, len(grid)), grid)
            if block.label is not None:
                matrix[:, block.label] = u < share
        return matrix


def normal_scores(uniform: np.ndarray) -> np.ndarray:
    """Uniform scores -> standard normal scores, kept off the infinite ends."""
    tiny = np.finfo(np.float64).eps
    return stats.norm.ppf(np.clip(uniform, tiny, 1 - tiny))


class BaselineSynthesizer(Synthesizer):
    """Template of the non-neural synthesizers: fit in the plain space, sample from it.

    A subclass writes ``_fit_matrix`` (learn from the (n, S) matrix of real rows),
    ``_generate`` (an (n, S) matrix from a numpy generator) and ``_arrays`` / ``_set_arrays``
    (its learned state, plain numeric arrays saved as one ``.npz``).
    """

    #: said in ``model.json`` and shown by the report: what the saved model reveals of real rows
    privacy_note: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def _fit(self, table: pa.Table, **_: Any) -> None:
        if self.config.privacy.enabled:
            raise ConfigError(f"model {self.name} has no differential privacy; use vae or patient-vae")
        started = time.perf_counter()
        frame = to_model_frame(table, self.schema_)
        self.transformer_ = PlainTransformer(self.config.transforms, seed=self.config.seed).fit(frame, self.schema_)
        matrix = self.transformer_.transform(frame)
        self._fit_matrix(matrix, np.random.default_rng([self.config.seed, _FIT_STREAM]))
        seconds = time.perf_counter() - started
        self.privacy_ = PrivacyReport(False)
        self.training_ = TrainingReport(
            device="cpu", rows=len(frame), epochs_run=0, best_epoch=0, stopped_early=False,
            seconds=seconds, rows_per_second=len(frame) / seconds if seconds > 0 else 0.0, privacy=self.privacy_,
        )

    @abstractmethod
    def _fit_matrix(self, matrix: np.ndarray, rng: np.random.Generator) -> None: ...

    @abstractmethod
    def _generate(self, n: int, rng: np.random.Generator) -> np.ndarray: ...

    @abstractmethod
    def _arrays(self) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None: ...

    def _sample_frame(self, n: int, generator: torch.Generator, start: int) -> pd.DataFrame:
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))
        frame = self.transformer_.reverse_transform(self._generate(n, rng))
        constraints = self._rejection_constraints()
        for _ in range(REJECTION_ROUNDS if constraints else 0):
            bad = violations(frame, constraints)
            if not bad.any():
                break
            redraw = self.transformer_.reverse_transform(self._generate(int(bad.sum()), rng))
            frame = pd.concat([frame[~bad], redraw], ignore_index=True)
        return frame

    def _save(self, folder: Path) -> None:
        described = {"name": self.name, "description": self.description, "privacy_note": self.privacy_note}
        write_json_atomic(folder / MODEL_JSON, described)
        self.transformer_.save(folder)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **self._arrays())
        write_bytes_atomic(folder / STATE_NPZ, buffer.getvalue())

    def _load(self, folder: Path) -> None:
        self.transformer_ = PlainTransformer.load(folder)
        path = folder / STATE_NPZ
        if not path.is_file():
            raise ModelError(f"{folder}: missing {STATE_NPZ}; is this a {self.name} model folder?")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except ValueError as exc:  # an object array would need unpickling
            raise ModelError(f"{path}: arrays refused ({exc})") from None
        self._set_arrays(arrays)


class Features:
    """The plain matrix as standardised numeric features: values as they are, labels one-hot.

    PCA works in this space and SMOTE finds neighbours in it. scikit-learn's
    ``OneHotEncoder`` (with the known classes, so it learns nothing from data) and
    ``StandardScaler`` do the work; :meth:`inverse` takes each one-hot block's largest entry.
    """

    def __init__(self, segments: list[Segment]):
        self.continuous = [i for i, s in enumerate(segments) if s.kind == "continuous"]
        self.discrete = [i for i, s in enumerate(segments) if s.kind == "discrete"]
        self.width = len(segments)
        self.one_hot = OneHotEncoder(
            categories=[np.arange(segments[i].classes) for i in self.discrete], sparse_output=False, dtype=np.float64
        )
        if self.discrete:
            self.one_hot.fit(np.zeros((1, len(self.discrete)), dtype=np.intp))

    def fit(self, matrix: np.ndarray) -> Features:
        self.scaler_ = StandardScaler().fit(self._raw(matrix))
        return self

    def transform(self, matrix: np.ndarray) -> np.ndarray:
        return self.scaler_.transform(self._raw(matrix))

    def inverse(self, features: np.ndarray) -> np.ndarray:
        raw = self.scaler_.inverse_transform(features)
        matrix = np.zeros((len(features), self.width))
        matrix[:, self.continuous] = raw[:, : len(self.continuous)]
        if self.discrete:
            matrix[:, self.discrete] = self.one_hot.inverse_transform(raw[:, len(self.continuous) :])
        return matrix

    def _raw(self, matrix: np.ndarray) -> np.ndarray:
        parts = [matrix[:, self.continuous]]
        if self.discrete:
            parts.append(self.one_hot.transform(matrix[:, self.discrete].astype(np.intp)))
        return np.hstack(parts)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"feature_mean": self.scaler_.mean_, "feature_scale": self.scaler_.scale_}

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> Features:
        scaler = StandardScaler()
        scaler.mean_, scaler.scale_ = arrays["feature_mean"], arrays["feature_scale"]
        scaler.var_ = scaler.scale_**2
        scaler.n_features_in_ = len(scaler.mean_)
        self.scaler_ = scaler
        return self
