"""Synthesizers, registered by name: a new model is one module plus one line here."""

from __future__ import annotations

import importlib
from pathlib import Path

from synth.artifact import check_plain_files, read_json
from synth.config import PipelineConfig
from synth.errors import ConfigError, ModelError
from synth.models.base import MODEL_JSON, Synthesizer
from synth.models.patient import PatientSynthesizer
from synth.models.vae import VAESynthesizer
from synth.schema import Schema


class _Registry(dict):
    """Name -> synthesizer class; a baseline given as ``"module:Class"`` is imported when first asked for.

    So loading a VAE (a sampling worker, the CLI) does not import scikit-learn and SciPy for
    the baselines (~1.5 s of a worker's start).
    """

    def __getitem__(self, name: str) -> type[Synthesizer]:
        found = super().__getitem__(name)
        if isinstance(found, str):
            module, _, attribute = found.partition(":")
            found = getattr(importlib.import_module(module), attribute)
            self[name] = found
        return found


REGISTRY: dict[str, type[Synthesizer]] = _Registry(
    {
        VAESynthesizer.name: VAESynthesizer,
        PatientSynthesizer.name: PatientSynthesizer,
        "independent": "synth.models.marginals:IndependentSynthesizer",
        "gaussian-copula": "synth.models.copula:GaussianCopulaSynthesizer",
        "pca": "synth.models.pca:PCASynthesizer",
        "smote": "synth.models.smote:SMOTESynthesizer",
        "wgan-gp": "synth.models.gan:GANSynthesizer",
    }
)


def get_synthesizer(name: str) -> type[Synthesizer]:
    """The synthesizer class registered as ``name``."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; choose one of {sorted(REGISTRY)}") from None


def synthesizer_for(config: PipelineConfig, schema: Schema) -> Synthesizer:
    """A new synthesizer for this extract: ``model.name``, or for ``auto`` the patient model
    when the schema has an entity key and the row model otherwise."""
    name = config.model.name
    if name == "auto":
        name = PatientSynthesizer.name if schema.entity_key else VAESynthesizer.name
    return get_synthesizer(name)(config)


def load_synthesizer(folder: str | Path) -> Synthesizer:
    """Load a saved model folder, whichever synthesizer wrote it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"model folder not found: {folder}")
    check_plain_files(folder)
    name = read_json(folder / MODEL_JSON).get("name", "")
    if name not in REGISTRY:
        raise ModelError(f"{folder} holds an unknown model {name!r}")
    return REGISTRY[name].load(folder)
