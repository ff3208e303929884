"""Synthesizers, registered by name: a new model is one module plus one line here."""

from __future__ import annotations

from synth.errors import ConfigError
from synth.models.base import Synthesizer
from synth.models.vae import VAESynthesizer

REGISTRY: dict[str, type[Synthesizer]] = {VAESynthesizer.name: VAESynthesizer}


def get_synthesizer(name: str) -> type[Synthesizer]:
    """The synthesizer class registered as ``name``."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; choose one of {sorted(REGISTRY)}") from None
