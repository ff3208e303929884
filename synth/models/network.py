"""The mixed-type VAE network: one encoder, one decoder, a head per kind of segment.

Inputs are the :class:`~synth.transforms.Segment` matrix: continuous values and integer
labels. Labels are one-hot encoded here, inside the network. The decoder has

* a Gaussian head for every continuous segment (mean and a learned log-scale), and
* a softmax head for every discrete segment (a category, a GMM mode, a null flag).

The loss is the negative ELBO with one reduction throughout: summed over features and
latent dimensions, averaged over the batch. (The original averaged the cross-entropy
over the batch but summed the Gaussian and KL terms, so categorical columns weighed
~batch-size times less and collapsed.) With Opacus this is ``loss_reduction="mean"``.

Mixed precision: under bf16 autocast (CUDA) the linear layers compute in bf16, but every
head's output is cast back to float32 before a loss or a draw uses it. CUDA's autocast
runs ``exp``, ``log`` and ``sum`` in float32 whatever their input, so a bf16 tensor meeting
their output in ``index_add`` or ``gather`` was a dtype error; the log-sum-exp of the
softmax heads also needs float32's range and precision.

Shapes: ``...`` leading dimensions: ``(B,)`` for rows, ``(B, R)`` for patients with up to
``R`` rows each (Opacus then computes one gradient per patient, since every layer keeps
the batch dimension first); ``S`` segments, ``C`` continuous segments, ``K`` total
classes of all discrete segments, ``L`` latent size, ``E`` condition size.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from synth.errors import ModelError
from synth.transforms import Segment

#: |normalised value| cap: 4 = 16 standard deviations of the value's GMM mode. Values further
#: out (a few extreme outliers) would dominate the Gaussian loss, and are the most identifying.
CONTINUOUS_CLAMP = 4.0
LOG_SCALE_MIN = math.log(0.01)
LOG_SCALE_MAX = math.log(1.0)
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
#: Rows of Gumbel noise drawn and reduced at a time when sampling on CPU (~4 MB for 2,000 classes).
GUMBEL_BLOCK_ROWS = 512


class MixedVAE(nn.Module):
    """Encoder/decoder MLPs over a segment layout.

    Args:
        segments: the layout of the model-ready matrix.
        latent_dim: size of the latent code.
        hidden_dims: widths of the hidden layers (the decoder mirrors them).
        condition_dim: size of an optional conditioning vector fed to both halves.
    """

    def __init__(
        self,
        segments: Sequence[Segment],
        latent_dim: int,
        hidden_dims: Sequence[int],
        condition_dim: int = 0,
    ):
        super().__init__()
        continuous = [i for i, s in enumerate(segments) if s.kind == "continuous"]
        discrete = [i for i, s in enumerate(segments) if s.kind == "discrete"]
        classes = [segments[i].classes for i in discrete]
        self.latent_dim = latent_dim
        self.n_continuous = len(continuous)
        self.class_sizes = classes
        self.register_buffer("continuous_index", torch.tensor(continuous, dtype=torch.long), persistent=False)
        self.register_buffer("discrete_index", torch.tensor(discrete, dtype=torch.long), persistent=False)
        offsets = torch.tensor([0, *classes[:-1]], dtype=torch.long).cumsum(0) if classes else torch.zeros(0)
        self.register_buffer("class_offsets", offsets.long(), persistent=False)
        segment_of_logit = torch.repeat_interleave(torch.arange(len(classes)), torch.tensor(classes, dtype=torch.long))
        self.register_buffer("segment_of_logit", segment_of_logit, persistent=False)  # (K,)

        width = len(continuous) + sum(classes)
        self.encoder = _mlp(width + condition_dim, hidden_dims)
        self.to_mean = nn.Linear(hidden_dims[-1], latent_dim)
        self.to_logvar = nn.Linear(hidden_dims[-1], latent_dim)
        self.decoder = _mlp(latent_dim + condition_dim, list(reversed(hidden_dims)))
        self.to_continuous = nn.Linear(hidden_dims[0], 2 * len(continuous)) if continuous else None
        self.to_logits = nn.Linear(hidden_dims[0], sum(classes)) if classes else None

    # -- encoding -------------------------------------------------------------------------
    def continuous(self, x: torch.Tensor) -> torch.Tensor:
        """(..., S) -> (..., C): the continuous segments, outliers clamped."""
        return x[..., self.continuous_index].clamp(-CONTINUOUS_CLAMP, CONTINUOUS_CLAMP)

    def one_hot(self, x: torch.Tensor) -> torch.Tensor:
        """(..., S) segment matrix -> (..., C + K) network input."""
        continuous = self.continuous(x)
        if not self.class_sizes:
            return continuous
        labels = x[..., self.discrete_index].long() + self.class_offsets  # (..., D)
        hot = torch.zeros((*x.shape[:-1], sum(self.class_sizes)), device=x.device, dtype=x.dtype)
        hot.scatter_(-1, labels, 1.0)
        return torch.cat([continuous, hot], dim=-1)

    def encode(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.one_hot(x)
        if condition is not None:
            h = torch.cat([h, condition], dim=-1)
        h = self.encoder(h)
        return self.to_mean(h).float(), self.to_logvar(h).float()  # (..., L) each, float32 (see the module doc)

    def decode(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if condition is not None:
            z = torch.cat([z, condition], dim=-1)
        h = self.decoder(z)
        out: dict[str, torch.Tensor] = {}  # float32 heads whatever autocast did to h (see the module doc)
        if self.to_continuous is not None:
            mean, log_scale = self.to_continuous(h).float().chunk(2, dim=-1)  # (..., C) each
            out["mean"] = mean
            out["log_scale"] = log_scale.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX)
        if self.to_logits is not None:
            out["logits"] = self.to_logits(h).float()  # (..., K)
        return out

    def forward(
        self,
        x: torch.Tensor,
        condition: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Negative ELBO per unit, shape (B,).

        For (B, S) input a unit is a row. For (B, R, S) input a unit is a patient: the
        rows' losses are summed where ``mask`` (B, R) is true (padding contributes nothing).
        """
        mean, logvar = self.encode(x, condition)
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        z = mean + eps * torch.exp(0.5 * logvar)
        out = self.decode(z, condition)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=-1)
        per_row = self.reconstruction_nll(x, out) + kl  # (...,)
        if per_row.dim() == 1:
            return per_row
        weights = mask.to(per_row.dtype) if mask is not None else torch.ones_like(per_row)
        return (per_row * weights).flatten(1).sum(dim=1)

    def reconstruction_nll(self, x: torch.Tensor, out: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-row negative log-likelihood, shape (...,), summed over segments."""
        nll = torch.zeros(x.shape[:-1], device=x.device, dtype=x.dtype)
        if "mean" in out:
            target = self.continuous(x)
            z = (target - out["mean"]) * torch.exp(-out["log_scale"])
            nll = nll + (0.5 * z.pow(2) + out["log_scale"] + _HALF_LOG_2PI).sum(dim=-1)
        if "logits" in out:
            nll = nll + self._categorical_nll(out["logits"], x[..., self.discrete_index].long())
        return nll

    def _categorical_nll(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(..., K) logits, (..., D) labels -> (...,): sum over segments of -log softmax[label].

        All segments at once (a per-segment log_softmax costs a kernel launch and its
        backward per segment): logsumexp per segment = its max + log of the summed
        exponentials, the sums gathered by ``index_add``; the max is a constant for autograd.
        """
        lead, segments = logits.shape[:-1], len(self.class_sizes)
        index = self.segment_of_logit.expand(*lead, -1)  # (..., K)
        floor = torch.full((*lead, segments), -torch.inf, device=logits.device, dtype=logits.dtype)
        peak = floor.scatter_reduce(-1, index, logits.detach(), "amax")  # (..., D)
        shifted = torch.exp(logits - peak.gather(-1, index))
        sums = torch.zeros_like(peak).index_add(-1, self.segment_of_logit, shifted)
        chosen = logits.gather(-1, labels + self.class_offsets)  # (..., D)
        return (sums.log() + peak - chosen).sum(dim=-1)

    # -- generation -----------------------------------------------------------------------
    @torch.inference_mode()
    def generate(
        self, n: int, generator: torch.Generator, condition: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Draw ``n`` rows from the prior, shape (n, S), in segment order."""
        device = next(self.parameters()).device
        z = torch.randn((n, self.latent_dim), generator=generator, device=device)
        out = self.decode(z, condition)
        matrix = torch.empty((n, self.n_continuous + len(self.class_sizes)), device=device)
        if "mean" in out:
            noise = torch.randn(out["mean"].shape, generator=generator, device=device)
            matrix[:, self.continuous_index] = out["mean"] + noise * out["log_scale"].exp()
        if "logits" in out:
            # Gumbel-max: argmax(logits + Gumbel noise) is a draw from softmax(logits); one noise
            # tensor for every segment instead of a softmax and a multinomial call per segment.
            # On CPU the noise is drawn and reduced in blocks of rows that stay in cache, in place:
            # CPU uniform draws are serial, so the blocks consume the generator exactly as one
            # (n, K) draw would and the labels are bit-identical (~2x faster on 2 cores).
            logits = out["logits"]  # (n, K)
            block = GUMBEL_BLOCK_ROWS if device.type == "cpu" else n  # CUDA's Philox offsets are per call
            labels = torch.zeros((n, len(self.class_sizes)), dtype=torch.long, device=device)  # (n, D)
            segments = list(enumerate(zip(self.class_offsets.tolist(), self.class_sizes)))
            for first in range(0, n, block):
                rows = logits[first : first + block]
                noise = torch.rand(rows.shape, generator=generator, device=device).clamp_(min=1e-20)
                perturbed = torch.sub(rows, noise.log_().neg_().log_(), out=noise)
                for j, (start, size) in segments:
                    if size > 1:  # a one-class segment's label is 0
                        labels[first : first + block, j] = perturbed[:, start : start + size].argmax(dim=1)
            matrix[:, self.discrete_index] = labels.to(matrix.dtype)
        return matrix

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Initialise every layer from ``generator`` (PyTorch's default init, no global RNG)."""
        reset_linear_layers(self, generator)


def reset_linear_layers(network: nn.Module, generator: torch.Generator) -> None:
    """Initialise every linear layer of ``network`` from ``generator`` (PyTorch's default init)."""
    for module in network.modules():
        if isinstance(module, nn.Linear):
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
            bound = 1 / math.sqrt(module.in_features)
            nn.init.uniform_(module.bias, -bound, bound, generator=generator)


def _mlp(in_features: int, widths: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Linear(in_features, width), nn.ReLU()]
        in_features = width
    return nn.Sequential(*layers)


def load_weights(network: nn.Module, path: Path) -> nn.Module:
    """``network`` with the weights saved at ``path`` (loaded without unpickling code), in eval mode.

    Raises:
        ModelError: the file is missing, damaged, or holds weights of another shape.
    """
    try:
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except (RuntimeError, FileNotFoundError, EOFError, pickle.UnpicklingError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"{path}: cannot load the weights ({reason})") from None
    return network.eval()
