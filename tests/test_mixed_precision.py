"""bf16 autocast: training and sampling are type-safe and agree with float32.

On CUDA, bf16 autocast runs the linear layers in bf16 but ``exp``, ``log``, ``pow`` and
``sum`` in float32 whatever their input. Before the heads were cast to float32, the
categorical loss met a float32 ``exp`` output with a bf16 buffer in ``index_add`` and
failed (``self (BFloat16) and source (Float) must have the same scalar type``). CPU
autocast keeps those ops in bf16, so on CPU :class:`CudaFloat32Ops` adds CUDA's float32
policy for them: the CPU test then fails exactly as a GPU run did. Where CUDA is present
the same tests also run under the real CUDA autocast.

Tolerances (measured on CPU with three seeds, then given a margin of ~10x): the loss
within 0.1% of float32's (measured <= 3e-5), gradients with cosine similarity >= 0.999
to float32's (measured >= 0.9997) and relative distance <= 0.1 (measured <= 0.026);
sampled continuous values within 0.05 of float32's (measured <= 0.005), and >= 99% of
sampled labels equal (measured >= 99.96% with Gumbel-max draws; with inverse-CDF draws a
label differs only where the uniform falls within bf16's rounding of a class boundary).
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch.overrides import TorchFunctionMode

from synth.config import ModelOptions, PrivacyOptions
from synth.models.network import MixedVAE
from synth.models.training import Units, train
from synth.transforms import Segment

SEGMENTS = [
    Segment("a", "a", "continuous"),
    Segment("b", "b", "discrete", 2),
    Segment("c", "c", "discrete", 5),
    Segment("d", "d", "continuous"),
    Segment("e", "e", "discrete", 12),
    Segment("f", "f", "discrete", 1),
    Segment("g", "g", "continuous"),
]
CONTINUOUS = [i for i, s in enumerate(SEGMENTS) if s.kind == "continuous"]
DISCRETE = [i for i, s in enumerate(SEGMENTS) if s.kind == "discrete"]
NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=NO_CUDA)]


class CudaFloat32Ops(TorchFunctionMode):
    """CUDA autocast's float32 policy for the ops the loss uses (CPU autocast leaves them in bf16)."""

    OPS = {torch.exp, torch.Tensor.exp, torch.log, torch.Tensor.log, torch.pow, torch.Tensor.pow, torch.sum,
           torch.Tensor.sum}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.OPS:
            args = tuple(a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)
        return func(*args, **(kwargs or {}))


def bf16(device: str) -> contextlib.ExitStack:
    stack = contextlib.ExitStack()
    stack.enter_context(torch.autocast(device, dtype=torch.bfloat16))
    if device == "cpu":
        stack.enter_context(CudaFloat32Ops())
    return stack


def network(device: str, seed: int = 0) -> MixedVAE:
    model = MixedVAE(SEGMENTS, latent_dim=8, hidden_dims=[64, 64])
    model.reset_parameters(torch.Generator().manual_seed(seed))
    return model.to(device)


def segment_matrix(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    columns = [torch.randn(n, generator=g) if s.kind == "continuous" else
               torch.randint(0, s.classes, (n,), generator=g).float() for s in SEGMENTS]
    return torch.stack(columns, dim=1)


def loss_and_gradients(model: MixedVAE, x: torch.Tensor, precision) -> tuple[torch.Tensor, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    with precision:
        loss = model(x, generator=torch.Generator(device=x.device).manual_seed(1)).mean()
    loss.backward()
    return loss.detach(), torch.cat([p.grad.flatten() for p in model.parameters()])


@pytest.mark.parametrize("device", DEVICES)
def test_a_training_step_under_bf16_autocast_is_finite_and_matches_float32(device):
    model, x = network(device), segment_matrix(256, seed=0).to(device)
    full_loss, full_grad = loss_and_gradients(model, x, contextlib.nullcontext())
    half_loss, half_grad = loss_and_gradients(model, x, bf16(device))

    assert half_loss.dtype == torch.float32 and torch.isfinite(half_loss)
    assert torch.isfinite(half_grad).all()
    assert abs(half_loss.item() - full_loss.item()) <= 1e-3 * abs(full_loss.item())
    assert torch.nn.functional.cosine_similarity(half_grad, full_grad, dim=0).item() >= 0.999
    assert ((half_grad - full_grad).norm() / full_grad.norm()).item() <= 0.1


@pytest.mark.parametrize("device", DEVICES)
def test_sampling_under_bf16_autocast_is_finite_and_matches_float32(device):
    model = network(device).eval()
    full = model.generate(4_000, torch.Generator(device=device).manual_seed(2))
    with bf16(device):
        half = model.generate(4_000, torch.Generator(device=device).manual_seed(2))

    assert half.dtype == torch.float32 and torch.isfinite(half).all()
    assert (half[:, CONTINUOUS] - full[:, CONTINUOUS]).abs().max().item() <= 0.05
    assert (half[:, DISCRETE] == full[:, DISCRETE]).float().mean().item() >= 0.99
    for j, i in enumerate(DISCRETE):  # every label is a class of its segment
        assert 0 <= half[:, i].min() and half[:, i].max() < SEGMENTS[i].classes


@NO_CUDA
def test_the_training_loop_trains_with_mixed_precision_on_cuda():
    options = ModelOptions(epochs=2, batch_size=64, device="cuda", mixed_precision=True, validation_fraction=0.0)
    model = network("cpu")
    report = train(model, Units(segment_matrix(512, seed=3)), options, PrivacyOptions(), seed=0)
    assert report.device.startswith("cuda") and report.epochs_run == 2
    assert all(torch.isfinite(torch.tensor(h.train_loss)) for h in report.history)
