"""Drawing rows on the CPU with the decoder's wide layers in int8.

After the grouped heads (:mod:`synth.models.network`), most of a synthetic row's cost on
the CPU is two matrix products: the decoder's hidden-to-hidden layer and its logits layer
(on diabetes-130 ~208k of the decoder's ~220k multiply-adds per row). With their weights
in int8 and their inputs quantized per batch (dynamic quantization: int8 products summed
exactly in int32, then scaled back to float32) FBGEMM computes them about twice as fast
on an AVX2 core. The float32 network stays the model (saved, trained, used on CUDA); only
sampling on the CPU reads this copy.

Which layers: the wide ones. The first decoder layer takes the latent draw itself (a
coarse int8 grid over N(0, 1) would move every row) and costs ~4% of the products; the
continuous head is a few outputs whose values are kept at float32 precision.

What it costs in quality, measured (``benchmarks/README.md``, "int8 sampling"): logits
move by 0.003-0.007 on average; SDMetrics quality, column shapes, pair trends and the
diagnosis columns' scores agree with float32 sampling to within 0.0004 at equal seeds.

``torch.ao.quantization`` is deprecated in favour of torchao, whose int8 path on the
CPU needs ``torch.compile`` (eagerly it ran at 1/20 of float32 here). torch is pinned
exactly (pyproject.toml), so this module uses the eager API that the pinned release
still ships, and :func:`sampling_network` keeps float32 where it is gone (and says so
in the log).
"""

from __future__ import annotations

import copy
import logging
import warnings

import torch
from torch import nn

from synth.models.network import MixedVAE

log = logging.getLogger(__name__)


def wide_layers(network: MixedVAE) -> set[str]:
    """The names of the layers :func:`int8_copy` quantizes: every decoder layer after the first, and the logits."""
    names = {f"decoder.{name}" for name, module in network.decoder.named_children() if isinstance(module, nn.Linear)}
    names.discard("decoder.0")
    if network.to_logits is not None:
        names.add("to_logits")
    return names


def int8_copy(network: MixedVAE) -> MixedVAE:
    """A copy of ``network`` for drawing rows on the CPU, its :func:`wide_layers` in int8.

    Raises:
        ImportError: this torch has no eager dynamic quantization (see the module doc).
    """
    from torch.ao.quantization import quantize_dynamic  # deprecated in the pinned torch, not removed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation notices, once per layer
        sampler = quantize_dynamic(copy.deepcopy(network).cpu().eval(), wide_layers(network), dtype=torch.qint8)
    for module in sampler.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = True  # only ever run forward: no new (batch, width) tensor per layer
    return sampler


def sampling_network(network: MixedVAE, int8: bool) -> MixedVAE:
    """The network that draws rows: ``network`` itself on CUDA or when ``int8`` is off, else its int8 copy."""
    if not int8 or next(network.parameters()).device.type != "cpu":
        return network
    try:
        return int8_copy(network)
    except ImportError:
        log.warning("torch %s has no eager int8 quantization: sampling in float32", torch.__version__)
        return network
