"""One VAE over one table: its transformer, its network, its training report.

The row-level synthesizer has one of these; the patient-level synthesizer has two
(patients, and rows conditioned on their patient). With a DP domain (released by the
synthesizer, see :mod:`synth.dp_domain`) the transformer is fitted on a sample drawn
from it, and real rows are fitted into it before they are transformed - with secure
randomness, since those draws touch real rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from synth import dp_domain
from synth.config import PipelineConfig
from synth.io.atomic import atomic_path, write_json_atomic, write_text_atomic
from synth.models.int8 import sampling_network
from synth.models.network import MixedVAE, load_weights
from synth.models.training import EpochCallback, TrainingReport, Units, train
from synth.privacy import PrivacyReport, TrainingBudget, secure_numpy
from synth.schema import Schema
from synth.transforms import TableTransformer

WEIGHTS = "model.pt"
TRAINING_JSON = "training.json"
DOMAIN_JSON = "dp_domain.json"
LEVEL_SCHEMA = "level_schema.json"
DECODE_BATCH = 4_096


class TableVAE:
    """A fitted :class:`TableTransformer` plus a trained :class:`MixedVAE`.

    Args:
        config: model and transform settings.
        seed: seeds the transformer, the network's initialisation and its training.
        condition_dim: size of the conditioning vector (0: unconditional).
    """

    def __init__(self, config: PipelineConfig, seed: int, condition_dim: int = 0):
        self.config = config
        self.seed = seed
        self.condition_dim = condition_dim
        self.domain_: dp_domain.DPDomain | None = None
        self._sampler: tuple[MixedVAE, MixedVAE] | None = None  # (trained network, the network that samples it)

    # -- transforms -----------------------------------------------------------------------
    def fit_transformer(self, frame: pd.DataFrame, schema: Schema, domain: dp_domain.DPDomain | None = None) -> TableVAE:
        """Fit the transforms on ``frame``, or (DP) on a seeded sample drawn from its released ``domain``."""
        self.schema_ = schema
        fit_on = frame
        if domain is not None:
            self.domain_ = domain
            fit_on = dp_domain.sample_frame(domain, schema.modelled, np.random.default_rng([self.seed, 0xD0]))
        self.transformer_ = TableTransformer(self.config.transforms, seed=self.seed).fit(fit_on, schema)
        return self

    def _domain_matrix(self) -> np.ndarray:
        """The DP domain's marginal sample, transformed: released values only, so seeded."""
        sample = dp_domain.sample_frame(self.domain_, self.schema_.modelled, np.random.default_rng([self.seed, 0xD0]))
        return self.transformer_.transform(sample, np.random.default_rng([self.seed, 0xD1]))

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The training matrix of real rows (fitted into the DP domain first when there is one).

        Replacing unreleased categories and choosing each value's GMM component are random
        draws over real rows: seeded without DP, secure with it (see :func:`dp_domain.restrict`).
        """
        if self.domain_ is None:
            return self.transformer_.transform(frame, np.random.default_rng([self.seed, 0x7A]))
        rng = secure_numpy()
        frame = dp_domain.restrict(frame, self.domain_, self.schema_.modelled, rng)
        return self.transformer_.transform(frame, rng)

    # -- the network ----------------------------------------------------------------------
    def new_network(self) -> MixedVAE:
        """An untrained network: seeded init (data-independent, so seeded even under DP) and,
        with a DP domain, heads starting at its released marginals (post-processing, free)."""
        network = self.build_network()
        network.reset_parameters(torch.Generator().manual_seed(self.seed))
        if self.domain_ is not None:
            network.start_at_marginals(torch.as_tensor(self._domain_matrix(), dtype=torch.float32))
        return network

    def build_network(self) -> MixedVAE:
        options = self.config.model
        return MixedVAE(
            self.transformer_.segments_,
            latent_dim=options.latent_dim,
            hidden_dims=options.hidden_dims,
            condition_dim=self.condition_dim,
        )

    def train(
        self,
        units: Units,
        budget: TrainingBudget | None,
        on_epoch: EpochCallback | None = None,
        checkpoint_dir: str | Path | None = None,
        stage: str = "",
        fingerprint: str | None = None,
    ) -> TrainingReport:
        """Train a new network on ``units`` (with DP when ``budget`` is given)."""
        network = self.new_network()
        options = self.config.model
        self.training_ = train(
            network, units, options, budget, self.seed, on_epoch, checkpoint_dir, stage, fingerprint
        )
        self.network_ = network.cpu().eval()
        return self.training_

    def generate(self, n: int, generator: torch.Generator, condition: torch.Tensor | None = None) -> np.ndarray:
        """(n, segments) matrix, decoded in fixed-size batches (softmax outputs are wide)."""
        network = self.sampling_network()
        out = np.empty((n, len(self.transformer_.segments_)), dtype=np.float64)
        for start in range(0, n, DECODE_BATCH):
            stop = min(n, start + DECODE_BATCH)
            part = None if condition is None else condition[start:stop]
            out[start:stop] = network.generate(stop - start, generator, part).cpu().numpy()
        return out

    def sampling_network(self) -> MixedVAE:
        """The network that draws rows: on the CPU an int8 copy of the trained one (``model.int8_sampling``).

        Built once per trained network (training or a DP fit may replace ``network_``).
        """
        if self._sampler is None or self._sampler[0] is not self.network_:
            self._sampler = (self.network_, sampling_network(self.network_, self.config.model.int8_sampling))
        return self._sampler[1]

    def encode_inputs(self, matrix: np.ndarray) -> torch.Tensor:
        """The network's input vector (continuous values + one-hot labels) for each row."""
        with torch.inference_mode():
            return self.network_.one_hot(torch.as_tensor(matrix, dtype=torch.float32))

    def reverse(self, matrix: np.ndarray) -> pd.DataFrame:
        return self.transformer_.reverse_transform(matrix, arrow_text=True)

    @property
    def input_dim(self) -> int:
        segments = self.transformer_.segments_
        return sum(s.classes for s in segments if s.kind == "discrete") + sum(s.kind == "continuous" for s in segments)

    # -- persistence ----------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.transformer_.save(folder)
        write_text_atomic(folder / LEVEL_SCHEMA, self.schema_.to_json())
        with atomic_path(folder / WEIGHTS) as tmp:
            torch.save(self.network_.state_dict(), tmp)
        write_json_atomic(folder / TRAINING_JSON, self.training_.to_dict())
        if self.domain_ is not None:
            write_json_atomic(folder / DOMAIN_JSON, self.domain_.to_dict())

    @classmethod
    def load(cls, folder: Path, config: PipelineConfig, seed: int, condition_dim: int = 0) -> TableVAE:
        self = cls(config, seed, condition_dim)
        self.transformer_ = TableTransformer.load(folder)
        self.schema_ = Schema.from_json((folder / LEVEL_SCHEMA).read_text(encoding="utf-8"))
        self.network_ = load_weights(self.build_network(), folder / WEIGHTS)
        report = json.loads((folder / TRAINING_JSON).read_text())
        report["privacy"] = PrivacyReport(**report["privacy"])
        report["history"] = []  # the per-epoch history stays in the file; sampling does not need it
        self.training_ = TrainingReport(**report)
        if (folder / DOMAIN_JSON).is_file():
            self.domain_ = dp_domain.DPDomain.from_dict(json.loads((folder / DOMAIN_JSON).read_text()))
        return self
