"""A GAN over the VAE's representation: Gumbel-softmax heads, a WGAN-GP critic.

The table goes through the same :class:`~synth.transforms.TableTransformer` as the VAE
(mode-specific normalisation, labels for categories, modes and null flags). The
generator has a tanh head for every continuous segment (a value within its GMM mode,
``(x - mean) / 4 std``, so nearly always inside [-1, 1]; real values beyond it are clipped
for the critic, as CTGAN does) and a Gumbel-softmax head for every discrete segment: a
category, a GMM mode or a null flag (Camino, Hammerschmidt & State 2018, "Generating
multi-categorical samples with generative adversarial networks"). The critic sees real
rows one-hot encoded and generated rows as relaxed one-hots, and is trained with the
gradient penalty of Gulrajani et al. 2017 ("Improved training of Wasserstein GANs"):
``critic_steps`` critic updates per generator update, Adam with betas (0.5, 0.9). The
critic judges ``pac`` rows at a time (PacGAN, Lin et al. 2018), so a generator that
repeats one kind of row is easy to tell apart; the penalty is then taken per pack.

Every row is a unit of learning: with an entity key the GAN models rows, and each
synthetic row gets a patient of its own. It has no differential privacy and refuses
``privacy.epsilon``. Training is not checkpointed: a rerun after a crash trains again
from the start (with the same seed, to the same weights).

Shapes: ``B`` rows, ``L`` noise size, ``S`` segments, ``C`` continuous segments, ``K`` total
classes of the discrete segments, ``P`` rows per pack; the critic's input is (B / P, P (C + K)).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from torch import nn
from torch.nn import functional as F

from synth.constraints import violations
from synth.errors import ConfigError
from synth.frames import to_model_frame
from synth.io.atomic import atomic_path
from synth.models.base import REJECTION_ROUNDS, Synthesizer
from synth.models.network import load_weights, reset_linear_layers
from synth.models.training import EpochCallback, EpochStats, TrainingReport, pick_device
from synth.privacy import PrivacyReport
from synth.transforms import Segment, TableTransformer

WEIGHTS = "model.pt"
SAMPLE_BATCH = 16_384
BETAS = (0.5, 0.9)


def gumbel_noise(shape: Sequence[int], generator: torch.Generator) -> torch.Tensor:
    """Standard Gumbel noise from ``generator``: ``-log E`` with ``E ~ Exp(1)``.

    The same construction as :func:`torch.nn.functional.gumbel_softmax`, which draws from
    the global generator; this one draws only from the one it is given.
    """
    return -torch.empty(tuple(shape)).exponential_(generator=generator).log()


def gradient_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """The WGAN-GP penalty: ``mean_i (||grad critic(x_hat_i)||_2 - 1)^2``.

    ``x_hat_i = a_i real_i + (1 - a_i) fake_i`` with ``a_i ~ U(0, 1)`` from ``generator``
    (Gulrajani et al. 2017, eq. 3). The mean is over the batch of each interpolate's squared
    deviation, not the square of the mean norm (which lets norms above and below 1 cancel).
    The graph is kept so the penalty can be back-propagated into the critic.

    Args:
        critic: maps (B, D) to (B,) or (B, 1).
        real, fake: (B, D) each.
        generator: draws the interpolation weights.
    """
    alpha = torch.rand((real.shape[0], 1), generator=generator).to(real.device)
    x_hat = (alpha * real + (1 - alpha) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)  # (B, D)
    return ((grad.norm(2, dim=1) - 1) ** 2).mean()


class Generator(nn.Module):
    """Noise (B, L) -> a tanh value per continuous segment and logits per discrete segment.

    Args:
        segments: the layout of the model-ready matrix.
        noise_dim: size of the input noise.
        hidden_dims: widths of the hidden layers.
    """

    def __init__(self, segments: Sequence[Segment], noise_dim: int, hidden_dims: Sequence[int]):
        super().__init__()
        self.noise_dim = noise_dim
        self.continuous_index = [i for i, s in enumerate(segments) if s.kind == "continuous"]
        self.discrete_index = [i for i, s in enumerate(segments) if s.kind == "discrete"]
        self.class_sizes = [segments[i].classes for i in self.discrete_index]
        self.width = len(segments)
        layers: list[nn.Module] = []
        width = noise_dim
        for hidden in hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, len(self.continuous_index) + sum(self.class_sizes))

    def _split(self, z: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        out = self.head(self.body(z))  # (B, C + K)
        continuous, logits = out.split([len(self.continuous_index), sum(self.class_sizes)], dim=1)
        return torch.tanh(continuous), list(logits.split(self.class_sizes, dim=1))

    def forward(self, z: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
        """(B, L) -> (B, C + K): tanh values, then a Gumbel-softmax relaxed one-hot per segment."""
        continuous, logits = self._split(z)
        relaxed = [
            F.softmax((part + gumbel_noise(part.shape, generator).to(part.device)) / temperature, dim=1)
            for part in logits
        ]
        return torch.cat([continuous, *relaxed], dim=1)

    @torch.inference_mode()
    def sample(self, z: torch.Tensor, generator: torch.Generator) -> np.ndarray:
        """(B, L) -> (B, S) segment matrix: tanh values, and labels drawn from each head's softmax
        by Gumbel-max (the zero-temperature limit of the relaxation)."""
        continuous, logits = self._split(z)
        matrix = np.empty((z.shape[0], self.width), dtype=np.float64)
        matrix[:, self.continuous_index] = continuous.double().cpu().numpy()
        for j, part in zip(self.discrete_index, logits):
            matrix[:, j] = (part + gumbel_noise(part.shape, generator).to(part.device)).argmax(dim=1).cpu().numpy()
        return matrix


def critic_network(width: int, hidden_dims: Sequence[int]) -> nn.Sequential:
    """(B, width) -> (B, 1). No batch normalisation: the penalty is per sample (Gulrajani et al. 2017)."""
    layers: list[nn.Module] = []
    for hidden in hidden_dims:
        layers += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, 1))


def one_hot(matrix: torch.Tensor, segments: Sequence[Segment]) -> torch.Tensor:
    """(B, S) segment matrix -> (B, C + K) critic input laid out like :meth:`Generator.forward`'s output."""
    continuous = [i for i, s in enumerate(segments) if s.kind == "continuous"]
    hot = [F.one_hot(matrix[:, i].long(), s.classes).float() for i, s in enumerate(segments) if s.kind == "discrete"]
    return torch.cat([matrix[:, continuous].float().clamp(-1, 1), *hot], dim=1)


class GANSynthesizer(Synthesizer):
    """Wasserstein GAN with gradient penalty and Gumbel-softmax categorical heads."""

    name = "wgan-gp"

    def _fit(self, table: pa.Table, on_epoch: EpochCallback | None = None, **_: Any) -> None:
        if self.config.privacy.enabled:
            raise ConfigError(f"model {self.name} has no differential privacy; use vae or patient-vae")
        seed, options = self.config.seed, self.config.model
        epochs = options.planned_epochs
        frame = to_model_frame(table, self.schema_)
        self.transformer_ = TableTransformer(self.config.transforms, seed=seed).fit(frame, self.schema_)
        matrix = torch.as_tensor(self.transformer_.transform(frame, np.random.default_rng([seed, 0x7A])))
        self.generator_, history, seconds = self._train(matrix, on_epoch)
        self.privacy_ = PrivacyReport(False)
        self.training_ = TrainingReport(
            device=str(pick_device(options.device)),
            rows=len(frame),
            epochs_run=epochs,
            best_epoch=epochs,  # no validation loss to choose an epoch by: the last one is kept
            stopped_early=False,
            seconds=seconds,
            rows_per_second=len(frame) * epochs / seconds if seconds > 0 else 0.0,
            history=history,
            privacy=self.privacy_,
        )

    def _train(self, matrix: torch.Tensor, on_epoch: EpochCallback | None) -> tuple[Generator, list[EpochStats], float]:
        """Train on the (N, S) segment matrix; an epoch is N / batch_size generator updates."""
        options, gan = self.config.model, self.config.model.gan
        device = pick_device(options.device)
        rng = torch.Generator().manual_seed(self.config.seed)
        segments = self.transformer_.segments_
        generator = self._build_generator()
        width = len(generator.continuous_index) + sum(generator.class_sizes)
        critic = critic_network(gan.pac * width, options.hidden_dims)
        reset_linear_layers(generator, rng)
        reset_linear_layers(critic, rng)
        generator, critic = generator.to(device), critic.to(device)
        optimise_g = torch.optim.Adam(generator.parameters(), lr=gan.learning_rate, betas=BETAS)
        optimise_c = torch.optim.Adam(critic.parameters(), lr=gan.learning_rate, betas=BETAS)
        rows = matrix.shape[0]
        batch = max(gan.pac, min(options.batch_size, rows) // gan.pac * gan.pac)  # whole packs only

        def packed(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(batch // gan.pac, gan.pac * width)  # (B, C + K) -> (B / P, P (C + K))

        def fake_batch() -> torch.Tensor:
            z = torch.randn((batch, options.latent_dim), generator=rng).to(device)
            return packed(generator(z, gan.temperature, rng))

        history, began = [], time.perf_counter()
        epochs = options.planned_epochs
        for epoch in range(1, epochs + 1):
            started = time.perf_counter()
            for _ in range(max(1, rows // batch)):
                for _ in range(gan.critic_steps):
                    real = packed(one_hot(matrix[torch.randint(rows, (batch,), generator=rng)], segments).to(device))
                    with torch.no_grad():
                        fake = fake_batch()
                    distance = critic(real).mean() - critic(fake).mean()  # the Wasserstein estimate
                    loss_c = -distance + gan.penalty_weight * gradient_penalty(critic, real, fake, rng)
                    optimise_c.zero_grad(set_to_none=True)
                    loss_c.backward()
                    optimise_c.step()
                loss_g = -critic(fake_batch()).mean()
                optimise_g.zero_grad(set_to_none=True)
                loss_g.backward()
                optimise_g.step()
            # train_loss: the critic's last Wasserstein estimate, which falls as the samples improve.
            history.append(EpochStats(epoch, distance.item(), None, time.perf_counter() - started))
            if on_epoch is not None:
                on_epoch(history[-1])
        return generator.cpu().eval(), history, time.perf_counter() - began

    def _build_generator(self) -> Generator:
        options = self.config.model
        return Generator(self.transformer_.segments_, options.latent_dim, options.hidden_dims)

    def _draw(self, n: int, generator: torch.Generator) -> pd.DataFrame:
        """``n`` rows of the modelled columns, generated in fixed-size batches."""
        matrix = np.empty((n, len(self.transformer_.segments_)), dtype=np.float64)
        for start in range(0, n, SAMPLE_BATCH):
            stop = min(n, start + SAMPLE_BATCH)
            z = torch.randn((stop - start, self.config.model.latent_dim), generator=generator)
            matrix[start:stop] = self.generator_.sample(z, generator)
        return self.transformer_.reverse_transform(matrix)

    def _sample_frame(self, n: int, generator: torch.Generator, start: int) -> pd.DataFrame:
        frame = self._draw(n, generator)
        constraints = self._rejection_constraints()
        for _ in range(REJECTION_ROUNDS if constraints else 0):
            bad = violations(frame, constraints)
            if not bad.any():
                break
            # Rows are exchangeable here, so redrawn rows simply replace the rejected ones.
            frame = pd.concat([frame[~bad], self._draw(int(bad.sum()), generator)], ignore_index=True)
        return frame

    def _save(self, folder: Path) -> None:
        self.transformer_.save(folder)
        with atomic_path(folder / WEIGHTS) as tmp:
            torch.save(self.generator_.state_dict(), tmp)

    def _load(self, folder: Path) -> None:
        self.transformer_ = TableTransformer.load(folder)
        self.generator_ = load_weights(self._build_generator(), folder / WEIGHTS)

