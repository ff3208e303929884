"""Synthesizers, registered by name: a new model is one module plus one line here."""

from __future__ import annotations

from pathlib import Path

from synth.artifact import check_plain_files, read_json
from synth.config import PipelineConfig
from synth.errors import ConfigError, ModelError
from synth.models.base import MODEL_JSON, Synthesizer
from synth.models.copula import GaussianCopulaSynthesizer
from synth.models.gan import GANSynthesizer
from synth.models.marginals import IndependentSynthesizer
from synth.models.patient import PatientSynthesizer
from synth.models.pca import PCASynthesizer
from synth.models.smote import SMOTESynthesizer
from synth.models.vae import VAESynthesizer
from synth.schema import Schema

REGISTRY: dict[str, type[Synthesizer]] = {
    cls.name: cls
    for cls in (
        VAESynthesizer,
        PatientSynthesizer,
        IndependentSynthesizer,
        GaussianCopulaSynthesizer,
        PCASynthesizer,
        SMOTESynthesizer,
        GANSynthesizer,
    )
}


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
