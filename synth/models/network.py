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

import numpy as np
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
#: Output weights at the start, as a share of their random init, when heads start at marginals.
MARGINAL_START_WEIGHT = 0.1
#: Rows whose categorical labels are drawn at a time on the CPU: one uniform block per this
#: many rows in both draws (so they agree label for label); the compiled draw's segment-major
#: block is then ~1 MB of float32 weights for diabetes-130's 558 logits (stays in cache).
SAMPLE_BLOCK_ROWS = 512
#: A discrete segment wider than this (with known class counts) gets a frequency-grouped head:
#: its HEAD_CLASSES most frequent classes one logit each, the rest as TAIL_GROUPS groups.
GROUP_ABOVE_CLASSES = 128
HEAD_CLASSES = 64
TAIL_GROUPS = 16


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
        self.class_sizes = classes  # the input layout: one one-hot block per discrete segment
        self.register_buffer("continuous_index", torch.tensor(continuous, dtype=torch.long), persistent=False)
        self.register_buffer("discrete_index", torch.tensor(discrete, dtype=torch.long), persistent=False)
        self.register_buffer("class_offsets", _offsets(classes), persistent=False)
        self._build_heads([segments[i] for i in discrete])

        width = len(continuous) + sum(classes)
        self.encoder = _mlp(width + condition_dim, hidden_dims)
        self.to_mean = nn.Linear(hidden_dims[-1], latent_dim)
        self.to_logvar = nn.Linear(hidden_dims[-1], latent_dim)
        self.decoder = _mlp(latent_dim + condition_dim, list(reversed(hidden_dims)))
        self.to_continuous = nn.Linear(hidden_dims[0], 2 * len(continuous)) if continuous else None
        self.to_logits = nn.Linear(hidden_dims[0], sum(self.head_sizes)) if classes else None

    def _build_heads(self, discrete: Sequence[Segment]) -> None:
        """The output layout: one softmax head per discrete segment, grouped where it is wide.

        A segment with more than :data:`GROUP_ABOVE_CLASSES` classes and known class counts
        gets a frequency-grouped head (:func:`group_classes`): its most frequent classes one
        logit each, the tail as :data:`TAIL_GROUPS` groups of equal share, a class in a group
        drawn in a second step from its share of the group (fixed, not learned). Buffers
        (``H`` head outputs of all segments, ``M`` grouped classes):

        * ``head_label`` (K,): input class (global index) -> its head's label;
        * ``class_log_share`` (K,): log of a class's share of its group (0 if not grouped);
        * ``head_class`` (H,): head output -> its class (-1 for a group);
        * ``head_group`` (H,): head output -> its group (-1 for a class);
        * ``member_running`` (M,) float64 running count of the grouped classes, group by
          group, and ``member_class`` (M,) their classes; group ``g`` is the slice
          ``[group_first[g], group_last[g]]`` of them.
        """
        head_sizes, head_label, log_share, head_class, head_group, grouped = [], [], [], [], [], []
        members, member_counts, group_first, group_last = [], [], [], []
        for segment in discrete:
            counts = segment.counts if segment.classes > GROUP_ABOVE_CLASSES else ()
            if len(counts) != segment.classes:  # ungrouped: one logit per class
                head_sizes.append(segment.classes)
                head_label += range(segment.classes)
                log_share += [0.0] * segment.classes
                head_class += range(segment.classes)
                head_group += [-1] * segment.classes
                continue
            single, groups = group_classes(counts, HEAD_CLASSES, TAIL_GROUPS)
            grouped.append(len(head_sizes))
            label, share = [0] * segment.classes, [0.0] * segment.classes
            for i, c in enumerate(single):
                label[c] = i
            for g, group in enumerate(groups):
                total = sum(counts[c] for c in group)
                group_first.append(len(members))
                for c in group:
                    label[c], share[c] = len(single) + g, math.log(counts[c] / total)
                    members.append(c)
                    member_counts.append(counts[c])
                group_last.append(len(members) - 1)
            head_sizes.append(len(single) + len(groups))
            head_label += label
            log_share += share
            head_class += [*single, *([-1] * len(groups))]
            first_group = len(group_first) - len(groups)
            head_group += [-1] * len(single) + list(range(first_group, first_group + len(groups)))
        self.head_sizes = head_sizes
        long = dict(dtype=torch.long)
        self.register_buffer("head_offsets", _offsets(head_sizes), persistent=False)
        segment_of_logit = torch.repeat_interleave(torch.arange(len(head_sizes)), torch.tensor(head_sizes, **long))
        self.register_buffer("segment_of_logit", segment_of_logit, persistent=False)  # (H,)
        self.register_buffer("head_label", torch.tensor(head_label, **long), persistent=False)  # (K,)
        self.register_buffer("class_log_share", torch.tensor(log_share, dtype=torch.float32), persistent=False)
        self.register_buffer("head_class", torch.tensor(head_class, **long), persistent=False)  # (H,)
        self.register_buffer("head_group", torch.tensor(head_group, **long), persistent=False)  # (H,)
        running = torch.tensor(member_counts, dtype=torch.float64).cumsum(0)
        self.register_buffer("member_running", running, persistent=False)  # (M,)
        self.register_buffer("member_class", torch.tensor(members, **long), persistent=False)  # (M,)
        self.register_buffer("group_first", torch.tensor(group_first, **long), persistent=False)
        self.register_buffer("group_last", torch.tensor(group_last, **long), persistent=False)
        self.register_buffer("grouped_segments", torch.tensor(grouped, **long), persistent=False)

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
            classes = x[..., self.discrete_index].long() + self.class_offsets  # (..., D) global input classes
            nll = nll + self._categorical_nll(out["logits"], self.head_label[classes])
            nll = nll - self.class_log_share[classes].sum(dim=-1)  # a grouped class: -log of its share
        return nll

    def _categorical_nll(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(..., H) logits, (..., D) head labels -> (...,): sum over segments of -log softmax[label].

        All segments at once (a per-segment log_softmax costs a kernel launch and its
        backward per segment): logsumexp per segment = its max + log of the summed
        exponentials, the sums gathered by ``index_add``; the max is a constant for autograd.
        """
        lead, segments = logits.shape[:-1], len(self.head_sizes)
        index = self.segment_of_logit.expand(*lead, -1)  # (..., K)
        floor = torch.full((*lead, segments), -torch.inf, device=logits.device, dtype=logits.dtype)
        peak = floor.scatter_reduce(-1, index, logits.detach(), "amax")  # (..., D)
        shifted = torch.exp(logits - peak.gather(-1, index))
        sums = torch.zeros_like(peak).index_add(-1, self.segment_of_logit, shifted)
        chosen = logits.gather(-1, labels + self.head_offsets)  # (..., D)
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
            heads = self._draw_labels(out["logits"], generator)  # (n, D)
            matrix[:, self.discrete_index] = self._classes_of(heads, generator).to(matrix.dtype)
        return matrix

    def _draw_labels(self, logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(n, H) logits -> (n, D) head labels, one draw from softmax(logits) per segment.

        On the CPU the compiled passes of :mod:`synth.models.softmax_draw` do what
        :meth:`_draw_labels_tensor` does, with the same uniforms and the same labels (see
        that module), in about half its time.
        """
        if logits.device.type != "cpu":
            return self._draw_labels_tensor(logits, generator)
        from synth.models.softmax_draw import pick_classes, shifted_segments  # numba only when drawing here

        n, segments = logits.shape[0], len(self.head_sizes)
        starts, sizes = self.head_offsets.numpy(), np.asarray(self.head_sizes, dtype=np.int64)
        labels = torch.empty((n, segments), dtype=torch.long)
        weights = torch.empty((logits.shape[1], SAMPLE_BLOCK_ROWS))
        for first in range(0, n, SAMPLE_BLOCK_ROWS):
            rows = logits[first : first + SAMPLE_BLOCK_ROWS].contiguous()  # (b, H)
            block = weights if rows.shape[0] == SAMPLE_BLOCK_ROWS else torch.empty((logits.shape[1], rows.shape[0]))
            shifted_segments(rows, starts, sizes, block)  # (H, b), each segment's max is 0
            uniform = torch.rand((rows.shape[0], segments), generator=generator, dtype=torch.float64)
            pick_classes(block.exp_(), uniform, starts, sizes, labels[first : first + rows.shape[0]])
        return labels

    def _draw_labels_tensor(self, logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(n, H) logits -> (n, D) head labels, one draw from softmax(logits) per segment.

        Inverse-CDF sampling, all segments at once: the exponentials (shifted by each
        segment's max) are summed cumulatively along the whole row, so segment ``j``
        owns the interval of the running sum from its start to its end and each class
        a sub-interval as wide as its unnormalised probability. One uniform per
        segment picks a point in that interval and ``searchsorted`` finds the class.
        That is one uniform per categorical value, where Gumbel-max needed one uniform
        and two logarithms per class. The running sum is float64: with float32 its
        rounding (~1e-7 of a sum of up to K) would blur classes rarer than ~1e-4.
        On CPU (where it is the reference the compiled draw is tested against) rows go in
        the compiled draw's blocks, drawing the same uniforms.
        """
        n, segments = logits.shape[0], len(self.head_sizes)
        device = logits.device
        block = SAMPLE_BLOCK_ROWS if device.type == "cpu" else n  # CUDA's Philox offsets are per call
        starts, sizes = self.head_offsets, torch.tensor(self.head_sizes, device=device)  # (D,) each
        before, last = (starts - 1).clamp(min=0), starts + sizes - 1  # (D,): the running sum's index before / at the end
        labels = torch.empty((n, segments), dtype=torch.long, device=device)
        for first in range(0, n, block):
            rows = logits[first : first + block]  # (b, H)
            index = self.segment_of_logit.expand(rows.shape[0], -1)
            floor = torch.full((rows.shape[0], segments), -torch.inf, device=device, dtype=rows.dtype)
            peak = floor.scatter_reduce(-1, index, rows, "amax")  # (b, D)
            weights = torch.sub(rows, peak.gather(-1, index)).exp_()  # (b, H), each segment's max is 1
            running = torch.cumsum(weights, dim=1, dtype=torch.float64)  # (b, H)
            low, high = running[:, before], running[:, last]  # (b, D): segment j is [low, high)
            low[:, 0] = 0.0  # the first segment starts at the row's start
            uniform = torch.rand(low.shape, generator=generator, device=device, dtype=torch.float64)
            target = low.add_(uniform.mul_(high.sub_(low)))  # (b, D), inside segment j's interval
            found = torch.searchsorted(running, target, right=True)  # first k with running[k] > target
            labels[first : first + block] = torch.minimum(found - starts, sizes - 1)  # guards rounding at the top
        return labels

    def _classes_of(self, heads: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(n, D) head labels -> (n, D) classes; a group's class drawn by its share of the group.

        One uniform per row and grouped segment (drawn for every row, so the generator
        advances the same whatever was drawn), inverse-CDF over the group's running counts.
        """
        outputs = heads + self.head_offsets  # (n, D) global head outputs
        classes = self.head_class[outputs]
        grouped = self.grouped_segments  # (G,)
        if grouped.numel() == 0:
            return classes
        group = self.head_group[outputs[:, grouped]]  # (n, G), -1 where a single class was drawn
        first, last = self.group_first[group.clamp(min=0)], self.group_last[group.clamp(min=0)]
        running = self.member_running
        low = torch.where(first > 0, running[(first - 1).clamp(min=0)], 0.0)
        uniform = torch.rand(low.shape, generator=generator, device=heads.device, dtype=torch.float64)
        target = low + uniform * (running[last] - low)
        member = torch.searchsorted(running, target, right=True).clamp_(first, last)  # (n, G)
        classes[:, grouped] = torch.where(group >= 0, self.member_class[member], classes[:, grouped])
        return classes

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Initialise every layer from ``generator`` (PyTorch's default init, no global RNG)."""
        reset_linear_layers(self, generator)

    @torch.no_grad()
    def start_at_marginals(self, x: torch.Tensor) -> None:
        """Make the decoder's heads start at the marginals of the (n, S) segment matrix ``x``.

        Each softmax head's biases become the log shares of its classes (half a count added
        to each), each Gaussian head's the mean and log standard deviation of its segment,
        and the output weights shrink to a tenth of their random start: the untrained
        decoder draws every column from its own distribution, and training spends its steps
        (under DP, its budget) on how columns depend on each other, not on relearning
        marginals the domain already released.
        """
        if self.to_logits is not None:
            labels = self.head_label[x[:, self.discrete_index].long() + self.class_offsets]  # (n, D) head labels
            biases = []
            for j, size in enumerate(self.head_sizes):
                counts = torch.bincount(labels[:, j], minlength=size).to(torch.float32) + 0.5
                biases.append(torch.log(counts / counts.sum()))
            self.to_logits.weight.mul_(MARGINAL_START_WEIGHT)
            self.to_logits.bias.copy_(torch.cat(biases))
        if self.to_continuous is not None:
            values = self.continuous(x)
            log_scale = values.std(dim=0).clamp_min(1e-6).log().clamp(LOG_SCALE_MIN, LOG_SCALE_MAX)
            self.to_continuous.weight.mul_(MARGINAL_START_WEIGHT)
            self.to_continuous.bias.copy_(torch.cat([values.mean(dim=0), log_scale]))


def reset_linear_layers(network: nn.Module, generator: torch.Generator) -> None:
    """Initialise every linear layer of ``network`` from ``generator`` (PyTorch's default init)."""
    for module in network.modules():
        if isinstance(module, nn.Linear):
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
            bound = 1 / math.sqrt(module.in_features)
            nn.init.uniform_(module.bias, -bound, bound, generator=generator)


def group_classes(counts: Sequence[int], single: int, groups: int) -> tuple[list[int], list[list[int]]]:
    """The ``single`` most frequent classes, and the rest as at most ``groups`` groups of equal share.

    Classes are taken in order of decreasing count (ties by class), so the tail groups go
    from a few middling classes to many rare ones: the rare classes, the most identifying,
    are only ever drawn by their share of a group, never by what the network learned of them.
    """
    order = sorted(range(len(counts)), key=lambda c: (-counts[c], c))
    head, tail = order[:single], order[single:]
    total = sum(counts[c] for c in tail)
    bins: list[list[int]] = [[] for _ in range(groups)]
    seen = 0
    for c in tail:
        bins[min(groups - 1, int(groups * seen / total) if total else 0)].append(c)
        seen += counts[c]
    return head, [b for b in bins if b]


def _offsets(sizes: Sequence[int]) -> torch.Tensor:
    """Start of each block in a concatenation of blocks of ``sizes``."""
    return torch.tensor([0, *sizes[:-1]], dtype=torch.long).cumsum(0) if sizes else torch.zeros(0, dtype=torch.long)


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
