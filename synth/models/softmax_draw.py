"""One draw per softmax segment on the CPU, in two compiled passes around torch's ``exp``.

:meth:`MixedVAE._draw_labels <synth.models.network.MixedVAE._draw_labels>` draws a class
for every categorical segment of every row by inverse CDF. Written in tensor operations
each step walks the whole ``(rows, logits)`` block (a segment maximum by ``scatter_reduce``,
its ``gather`` back, a float64 running sum, ``searchsorted``): on diabetes-130 that was a
third of a synthetic row's cost. Most segments are a handful of classes, so the work is
small but the passes over memory are many.

Here the block is turned segment-major once (``(logits, rows)``), so every loop below runs
across rows, which are independent: numba compiles them to vector instructions.

1. :func:`shifted_segments`: the transpose, then each segment's logits minus the row's
   maximum over that segment (so a segment's largest weight is 1, as before).
2. ``torch.exp_`` on that block (torch's vectorised ``exp``; a compiled loop calling
   ``exp`` is scalar and was slower than the whole tensor version).
3. :func:`pick_classes`: per segment its total weight (float64), the uniform scaled to it,
   and the class whose running weight first exceeds it.

The arithmetic is the tensor version's (float32 shift and ``exp``, the same uniforms in the
same order, float64 sums) except that the sums start at each segment rather than run along
the whole row: the labels agree wherever float64 rounding does not decide, i.e. everywhere
measured (4.8M diabetes-130 draws; ``tests/test_network.py`` checks a sample of random
logits). CUDA keeps the tensor version.

numba caches the compiled passes beside this file (``__pycache__``) or, where that is not
writable, under ``NUMBA_CACHE_DIR`` / the user's cache folder; the worker image compiles
them when it is built (``docker/Dockerfile.cpu``).
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit

TILE = 16  # rows x logits per step of the transpose: both sides stay in cache lines


# Explicit signatures: compiled (or loaded from numba's cache) when this module is imported,
# and an input of another layout is an error rather than a slower second compilation.
@njit("void(float32[:, ::1], int64[::1], int64[::1], float32[:, ::1])", cache=True, nogil=True,
      fastmath={"nnan", "ninf"})
def _shift(rows, starts, sizes, out):  # pragma: no cover - compiled
    block, width = rows.shape
    for r0 in range(0, block, TILE):
        r1 = min(r0 + TILE, block)
        for k0 in range(0, width, TILE):
            k1 = min(k0 + TILE, width)
            for r in range(r0, r1):
                for k in range(k0, k1):
                    out[k, r] = rows[r, k]
    peak = np.empty(block, np.float32)
    for j in range(starts.shape[0]):
        first, stop = starts[j], starts[j] + sizes[j]
        peak[:] = out[first]
        for k in range(first + 1, stop):
            logits = out[k]
            for r in range(block):
                peak[r] = max(peak[r], logits[r])
        for k in range(first, stop):
            logits = out[k]
            for r in range(block):
                logits[r] -= peak[r]


@njit("void(float32[:, ::1], float64[:, ::1], int64[::1], int64[::1], int64[:, ::1])", cache=True, nogil=True)
def _pick(weights, uniforms, starts, sizes, labels):  # pragma: no cover - compiled
    block = weights.shape[1]
    target = np.empty(block, np.float64)
    running = np.empty(block, np.float64)
    for j in range(starts.shape[0]):
        first, size = starts[j], sizes[j]
        target[:] = 0.0
        for k in range(first, first + size):
            w = weights[k]
            for r in range(block):
                target[r] += w[r]
        for r in range(block):
            target[r] *= uniforms[r, j]
            labels[r, j] = 0
        running[:] = 0.0
        for k in range(first, first + size - 1):  # the last class is what is left
            w = weights[k]
            for r in range(block):
                running[r] += w[r]
                labels[r, j] += running[r] <= target[r]


def shifted_segments(rows: torch.Tensor, starts: np.ndarray, sizes: np.ndarray, out: torch.Tensor) -> None:
    """``out`` (H, b) = ``rows`` (b, H) transposed, each segment shifted by its row-wise maximum."""
    _shift(rows.numpy(), starts, sizes, out.numpy())


def pick_classes(
    weights: torch.Tensor, uniforms: torch.Tensor, starts: np.ndarray, sizes: np.ndarray, labels: torch.Tensor
) -> None:
    """``labels`` (b, D) = per row and segment, the class that uniform ``(b, D)`` falls in.

    ``weights`` (H, b) are the unnormalised probabilities; a class is chosen with
    probability its weight over its segment's total.
    """
    _pick(weights.numpy(), uniforms.numpy(), starts, sizes, labels.numpy())
