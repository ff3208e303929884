"""The mixed-type VAE synthesizer: :class:`MixedVAE` trained by :func:`training.train`."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synth.artifact import read_json
from synth.errors import ModelError
from synth.io.atomic import atomic_path, write_json_atomic
from synth.models.base import Synthesizer
from synth.models.network import MixedVAE
from synth.models.training import EpochCallback, TrainingReport, Units, pick_device, train
from synth.privacy import PrivacyReport
from synth.transforms import Segment

WEIGHTS = "model.pt"
TRAINING_JSON = "training.json"
PRIVACY_JSON = "privacy.json"
DECODE_BATCH = 16_384


class VAESynthesizer(Synthesizer):
    """Variational autoencoder with Gaussian and softmax heads, optionally trained with DP."""

    name = "vae"

    def _build_network(self, segments: list[Segment]) -> MixedVAE:
        options = self.config.model
        return MixedVAE(segments, latent_dim=options.latent_dim, hidden_dims=options.hidden_dims)

    def _fit(
        self,
        matrix: np.ndarray,
        on_epoch: EpochCallback | None = None,
        checkpoint_dir: str | Path | None = None,
        **_: Any,
    ) -> None:
        network = self._build_network(self.transformer_.segments_)
        network.reset_parameters(torch.Generator().manual_seed(self.config.seed))
        units = Units(torch.as_tensor(matrix, dtype=torch.float32))
        config = self.config
        self.training_ = train(network, units, config.model, config.privacy, config.seed, on_epoch, checkpoint_dir)
        self.network_ = network.cpu().eval()

    def _sample(self, n: int, generator: torch.Generator) -> np.ndarray:
        # Decode in fixed-size batches: the softmax outputs are rows x all classes wide.
        out = np.empty((n, len(self.transformer_.segments_)), dtype=np.float64)
        for start in range(0, n, DECODE_BATCH):
            stop = min(n, start + DECODE_BATCH)
            out[start:stop] = self.network_.generate(stop - start, generator).cpu().numpy()
        return out

    @property
    def privacy_(self) -> PrivacyReport:
        return self.training_.privacy

    def _describe(self) -> dict:
        return {"latent_dim": self.config.model.latent_dim, "hidden_dims": self.config.model.hidden_dims}

    def _save(self, folder: Path) -> None:
        with atomic_path(folder / WEIGHTS) as tmp:
            torch.save(self.network_.state_dict(), tmp)
        write_json_atomic(folder / TRAINING_JSON, self.training_.to_dict())
        write_json_atomic(folder / PRIVACY_JSON, self.training_.privacy.to_dict())

    def _load(self, folder: Path, described: dict) -> None:
        network = self._build_network(self.transformer_.segments_)
        try:
            state = torch.load(folder / WEIGHTS, map_location="cpu", weights_only=True)
            network.load_state_dict(state)
        except (RuntimeError, FileNotFoundError, EOFError, pickle.UnpicklingError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelError(f"{folder / WEIGHTS}: cannot load the weights ({reason})") from None
        self.network_ = network.eval()
        report = read_json(folder / TRAINING_JSON)
        report["privacy"] = PrivacyReport(**report["privacy"])
        report["history"] = []  # per-epoch history stays in the file; it is not needed to sample
        self.training_ = TrainingReport(**report)

    def to(self, device: str) -> VAESynthesizer:
        """Move the network for sampling (``auto`` picks CUDA when present)."""
        self.network_ = self.network_.to(pick_device(device))
        return self

