"""The RDT set-up that turns a mixed-type table into model-ready numbers, and back.

Per column kind (all RDT transformers, two with fixes from :mod:`synth.rdt_fixes`):

* numerical -> Bayesian-GMM mode-specific normalisation: a value within its mode
  (``.normalized``, continuous), the mode (``.component``, discrete) and, when the
  column has nulls, a missing-value indicator (``.is_null``, discrete);
* datetime -> an exact count of its coarsest unit (days, seconds ...) -> the same GMM
  normalisation, plus ``.is_null``;
* categorical and boolean -> one integer label per category, null being a category of
  its own. Labels are one-hot encoded inside the network (cheaper than materialising
  thousands of one-hot columns, identical for the model).

The result is a float32 matrix whose columns are :class:`Segment` s, each either
continuous or discrete with a known number of classes: exactly what the VAE's heads
need. Reverse transform restores values only from the real domain (categories seen in
the fit, values inside the real range) and nulls from the indicators.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from rdt import HyperTransformer
from rdt.transformers import LabelEncoder
from rdt.transformers.utils import try_convert_to_dtype

from synth import safe_state
from synth.config import ColumnKind, TransformOptions
from synth.errors import ModelError, SchemaError
from synth.io.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic
from synth.rdt_fixes import SeededClusterNormalizer, StableTimestampEncoder
from synth.schema import ColumnSpec, Schema

STATE_JSON = "transformer.json"
STATE_ARRAYS = "transformer.npz"
SEGMENTS_JSON = "segments.json"


@dataclass(frozen=True)
class Segment:
    """One model-ready column: continuous (one float) or discrete (a label in ``range(classes)``).

    ``counts``: for a category column, how often each label occurs in the rows the
    transformer was fitted on (under DP, a sample drawn from the released domain); the
    network groups the rare labels of a wide column by them. Empty where not known.
    """

    name: str
    source: str
    kind: Literal["continuous", "discrete"]
    classes: int = 0
    counts: tuple[int, ...] = ()


class TableTransformer:
    """Fit RDT on a bounded sample; map frames to matrices and back.

    Args:
        options: GMM and sampling settings.
        seed: seeds the GMM fits, the fit sample and the default component draws.
    """

    def __init__(self, options: TransformOptions | None = None, seed: int = 0):
        self.options = options or TransformOptions()
        self.seed = seed

    # -- fitting -------------------------------------------------------------------------
    def fit(self, frame: pd.DataFrame, schema: Schema) -> TableTransformer:
        """Learn the transforms from ``frame`` (the modelled columns of the extract)."""
        modelled = schema.modelled
        missing = [c.name for c in modelled if c.name not in frame.columns]
        if missing:
            raise SchemaError(f"the frame lacks modelled columns {missing}")
        rng = np.random.default_rng(self.seed)
        sample = bounded_sample(frame[[c.name for c in modelled]], modelled, self.options.fit_sample_rows, rng)

        hyper = HyperTransformer()
        hyper.set_config(
            {
                "sdtypes": {c.name: _SDTYPES[c.kind] for c in modelled},
                "transformers": {c.name: self._transformer_for(c, sample[c.name], i) for i, c in enumerate(modelled)},
            }
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # RDT warns about its own defaults; we set every transformer
            hyper.fit(sample)
        self.hyper_ = hyper
        self.columns_ = [c.name for c in modelled]
        self.segments_ = self._segments(modelled, sample)
        return self

    def _transformer_for(self, spec: ColumnSpec, values: pd.Series, position: int):
        seed = self.seed * 1_000 + position
        if spec.kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
            return LabelEncoder(missing_value_encoding="new_category")
        distinct = int(values.nunique())
        normalizer = SeededClusterNormalizer(
            seed=seed,
            max_clusters=max(1, min(self.options.max_clusters, distinct)),
            weight_threshold=self.options.weight_threshold,
            learn_rounding_scheme=spec.kind is ColumnKind.NUMERICAL,
            enforce_min_max_values=spec.kind is ColumnKind.NUMERICAL,
            missing_value_generation="from_column" if spec.kind is ColumnKind.NUMERICAL else None,
        )
        if spec.kind is ColumnKind.NUMERICAL:
            return normalizer
        encoder = StableTimestampEncoder(missing_value_generation="from_column", enforce_min_max_values=True)
        encoder.output_properties[None]["next_transformer"] = normalizer
        return encoder

    def _segments(self, modelled: list[ColumnSpec], sample: pd.DataFrame) -> list[Segment]:
        transformers = self.hyper_.get_config()["transformers"]
        segments = []
        for spec in modelled:
            transformer = transformers[spec.name]
            if isinstance(transformer, LabelEncoder):
                classes = len(transformer.values_to_categories)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # every category of the fit sample is known: no random labels
                    labels = transformer._transform(sample[spec.name]).to_numpy(dtype=np.int64)
                counts = tuple(int(c) for c in np.bincount(labels, minlength=classes))
                segments.append(Segment(spec.name, spec.name, "discrete", classes, counts))
                continue
            segments += self._value_segments(spec, transformer)
            if transformer.null_transformer.models_missing_values():
                segments.append(Segment(f"{spec.name}.is_null", spec.name, "discrete", 2))
        return segments

    def _value_segments(self, spec: ColumnSpec, transformer) -> list[Segment]:
        """A number's or date's own segments: its value within its mode, and the mode (the mixture's component)."""
        normalizer = transformer
        if isinstance(transformer, StableTimestampEncoder):
            normalizer = transformer.output_properties[None]["next_transformer"]
        return [
            Segment(f"{spec.name}.normalized", spec.name, "continuous"),
            Segment(f"{spec.name}.component", spec.name, "discrete", normalizer.n_components),
        ]

    # -- transforming --------------------------------------------------------------------
    def transform(self, frame: pd.DataFrame, rng: np.random.Generator | None = None) -> np.ndarray:
        """Model-ready float64 matrix, one column per segment (discrete columns hold labels).

        float64 keeps the round trip exact (a date near 2150 in seconds needs more than
        float32's 24 bits); the model casts to float32 itself.
        """
        self._check_fitted()
        rng = rng if rng is not None else np.random.default_rng(self.seed)
        normalizers = self._normalizers()
        for normalizer in normalizers:
            normalizer.use_generator(rng)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = self.hyper_.transform(frame[self.columns_])
        finally:
            for normalizer in normalizers:
                normalizer.use_generator(None)  # a generator is run state, not fitted state
        return out[[s.name for s in self.segments_]].to_numpy(dtype=np.float64)

    def reverse_transform(self, matrix: np.ndarray, arrow_text: bool = False) -> pd.DataFrame:
        """Frame of the modelled columns from a matrix laid out like :meth:`transform`'s output.

        ``arrow_text``: text categories come back as Arrow strings (``pd.ArrowDtype``) built from
        the labels in C++, not as NumPy object arrays of Python strings, which sampling would
        only convert to Arrow again (a third of the reverse transform's time). The values are
        the same, so are the Arrow tables :func:`synth.frames.to_arrow` makes of either.
        """
        self._check_fitted()
        if matrix.ndim != 2 or matrix.shape[1] != len(self.segments_):
            raise ValueError(f"expected a matrix with {len(self.segments_)} columns, got shape {matrix.shape}")
        # Each transformer reverses only its own columns: RDT's HyperTransformer hands every
        # transformer (and copies) the whole frame, which costs O(columns^2) per chunk. Same
        # transformers, same order, same values and dtypes; label encoders take a numpy shortcut.
        matrix = matrix.astype(np.float64, copy=False)
        columns = {s.name: pd.Series(matrix[:, i]) for i, s in enumerate(self.segments_)}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for transformer in reversed(self.hyper_._transformers_sequence):
                outputs = transformer.get_output_columns()
                if not outputs or any(name not in columns for name in outputs):
                    continue
                restored = _reverse_labels(transformer, columns[outputs[0]], arrow_text)
                if restored is None:
                    restored = transformer.reverse_transform(pd.DataFrame({name: columns[name] for name in outputs}))
                for name in outputs:
                    del columns[name]
                columns.update(restored.items())
        return pd.DataFrame({name: columns[name] for name in self.columns_})

    def _normalizers(self) -> list[SeededClusterNormalizer]:
        found = []
        for transformer in self.hyper_.get_config()["transformers"].values():
            if isinstance(transformer, StableTimestampEncoder):
                transformer = transformer.output_properties[None]["next_transformer"]
            if isinstance(transformer, SeededClusterNormalizer):
                found.append(transformer)
        return found

    def _check_fitted(self) -> None:
        if not hasattr(self, "hyper_"):
            raise ModelError("the transformer is not fitted; call fit() first")

    # -- persistence ---------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        """Write the fitted state as JSON + npz (no pickle)."""
        self._check_fitted()
        folder = Path(folder)
        text, arrays = safe_state.dumps(self.hyper_)
        write_text_atomic(folder / STATE_JSON, text)
        write_bytes_atomic(folder / STATE_ARRAYS, arrays)
        write_json_atomic(
            folder / SEGMENTS_JSON,
            {
                "seed": self.seed,
                "options": self.options.model_dump(),
                "columns": self.columns_,
                "segments": [asdict(s) for s in self.segments_],
            },
        )

    @classmethod
    def load(cls, folder: str | Path) -> TableTransformer:
        import json

        folder = Path(folder)
        for name in (STATE_JSON, STATE_ARRAYS, SEGMENTS_JSON):
            if not (folder / name).is_file():
                raise ModelError(f"{folder}: missing {name}; is this a model folder?")
        meta = json.loads((folder / SEGMENTS_JSON).read_text())
        self = cls(TransformOptions(**meta["options"]), seed=meta["seed"])
        self.hyper_ = safe_state.loads((folder / STATE_JSON).read_text(), (folder / STATE_ARRAYS).read_bytes())
        self.columns_ = meta["columns"]
        self.segments_ = [Segment(**{**s, "counts": tuple(s.get("counts", ()))}) for s in meta["segments"]]
        return self


def _reverse_labels(encoder, labels: pd.Series, arrow_text: bool = False) -> pd.DataFrame | None:
    """A label encoder's ``reverse_transform``, vectorised; ``None`` where RDT must do it.

    RDT clips and rounds the labels, then maps them through ``values_to_categories``, which
    pandas does by taking from ``Series(mapping)`` at each label's position, and casts the
    result to the fitted dtype. With the labels 0..n-1 as keys the position is the label
    itself: the same values and dtype, without hashing every row.
    """
    if not isinstance(encoder, LabelEncoder) or encoder.add_noise:
        return None
    mapping = encoder.values_to_categories
    if not mapping or list(mapping) != list(range(len(mapping))):
        return None
    values = labels.to_numpy(dtype=np.float64)
    if np.isnan(values).any():
        return None  # RDT warns and maps NaN to NaN; rare, so let it
    positions = np.round(np.clip(values, 0, len(mapping) - 1)).astype(np.intp)
    if arrow_text and encoder.dtype == object and all(isinstance(v, str) or pd.isna(v) for v in mapping.values()):
        categories = pa.array(list(mapping.values()), type=pa.large_string(), from_pandas=True)  # NaN -> null
        text = pa.DictionaryArray.from_arrays(pa.array(positions, type=pa.int32()), categories).cast(pa.large_string())
        return pd.DataFrame({encoder.get_input_column(): pd.arrays.ArrowExtensionArray(text)})
    restored = pd.Series(mapping).take(positions).reset_index(drop=True)
    return try_convert_to_dtype(restored, encoder.dtype).to_frame(encoder.get_input_column())


def bounded_sample(
    frame: pd.DataFrame, columns: list[ColumnSpec], max_rows: int, rng: np.random.Generator
) -> pd.DataFrame:
    """At most ``max_rows`` random rows, topped up so the sample spans the whole extract.

    Fitting on a sample keeps the GMM fits fast on large extracts. The top-up adds the
    rows holding each numeric column's minimum and maximum and one row for every
    category (and null) the draw missed, so ranges and label maps are the extract's own
    and no real row is unencodable later.
    """
    if len(frame) <= max_rows:
        return frame.reset_index(drop=True)
    positions = [rng.choice(len(frame), size=max_rows, replace=False)]
    sampled = np.zeros(len(frame), dtype=bool)
    sampled[positions[0]] = True
    for spec in columns:
        column = frame[spec.name]
        nulls = column.isna().to_numpy()
        if nulls.any() and not nulls[sampled].any():
            positions.append(np.flatnonzero(nulls)[:1])
        if spec.kind in (ColumnKind.NUMERICAL, ColumnKind.DATETIME):
            if not nulls.all():
                positions.append(np.array([column.argmin(skipna=True), column.argmax(skipna=True)]))
            continue
        missed = ~column.isin(set(pd.unique(column[sampled].dropna()))).to_numpy() & ~nulls
        if missed.any():
            first_of_each = ~column[missed].duplicated().to_numpy()
            positions.append(np.flatnonzero(missed)[first_of_each])
    return frame.iloc[np.unique(np.concatenate(positions))].reset_index(drop=True)


_SDTYPES = {
    ColumnKind.NUMERICAL: "numerical",
    ColumnKind.DATETIME: "datetime",
    ColumnKind.CATEGORICAL: "categorical",
    ColumnKind.BOOLEAN: "categorical",
}
