"""Gower's distance between mixed-type rows, computed in blocks: never n x m in memory.

Definition (Gower 1971): d(a, b) = (1/p) * sum_j d_j(a, b) over the p compared columns, with
d_j = |a_j - b_j| / R_j for numbers (R_j the column's range; a constant column contributes
0) and d_j = 1[a_j != b_j] for categories. d lies in [0, 1]; 0 means equal on every column.
The ranges are fixed before any distance is taken (:class:`GowerScale`), and the checks fix
them on *real* rows only: a generator's outlier must not stretch the ruler and shrink every
distance. A value outside the range counts as at its nearest end (numbers are clamped to
[min, max] once scaled), so one column never contributes more than 1.

Missing values: a missing category is a category of its own, so two missing values
match (this is what the ``gower`` package does with Arrow/pandas ``None``). For numbers
two missing values are at distance 0 and a missing value is at distance 1 (the maximum)
from any present one. Here we part from the ``gower`` package on purpose: it returns NaN
for the whole pair as soon as one number is missing, which would drop every row with a
missing lab value or death date from a nearest-record search. On data without missing
numbers the two agree to float32 precision (``tests/test_eval_gower.py``). One other
difference: the package gives 0 to a numeric column whose maximum is exactly 0 (it
divides by the maximum); here such a column is scaled by its true range. (Comparing with
the package, beware: ``gower.gower_matrix(X, Y)`` with as many rows in X as in Y assumes
X is Y and mirrors its upper triangle, so its answer for two different tables of equal
size is wrong; compare on tables of different sizes.)

Speed: a block of query rows against a block of reference rows is a few dense tensor
operations. Numbers without missing values go through ``torch.cdist(p=1)``; categories
with at most ``ONE_HOT_MAX`` codes are one-hot encoded so their mismatch count is one
matrix product (mismatches = columns - matches); wider categories are compared code
by code. Only the ``k`` smallest distances per query row are kept (``torch.topk``).
With ``workers`` > 1 the query rows are cut into that many runs of whole query blocks, each
measured in its own spawned process against every reference row: a query row's distances
do not depend on the other query rows, and the blocks are the same, so the answer is
bit-identical to one process.

Reference: J. C. Gower (1971), "A general coefficient of similarity and some of its
properties", Biometrics 27(4), 857-871.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from synth.evaluation.encoding import Encoded

ONE_HOT_MAX = 64  # wider categories cost more as matrix-product columns than as comparisons
QUERY_BLOCK = 1024
REFERENCE_BLOCK = 8192
BFLOAT16_EXACT = 256  # bfloat16 holds every integer up to 256 exactly


@dataclass(frozen=True)
class GowerScale:
    """The numeric columns' minimum and range, fixed before any distance is taken.

    Every distance in one comparison must use the same ranges, or a synthetic row's
    distance and a holdout row's distance would be measured with different rulers.
    """

    minimum: np.ndarray
    range: np.ndarray

    @classmethod
    def fit(cls, *frames: Encoded) -> GowerScale:
        """Ranges over all rows of ``frames`` (the checks pass real rows only)."""
        stacked = np.vstack([f.numeric for f in frames])
        if stacked.shape[1] == 0 or stacked.shape[0] == 0:
            return cls(np.zeros(stacked.shape[1]), np.zeros(stacked.shape[1]))
        with np.errstate(all="ignore"):
            all_missing = np.isnan(stacked).all(axis=0)
            minimum = np.where(all_missing, 0.0, np.nanmin(np.where(all_missing, 0.0, stacked), axis=0))
            maximum = np.where(all_missing, 0.0, np.nanmax(np.where(all_missing, 0.0, stacked), axis=0))
        return cls(minimum, maximum - minimum)


def nearest(
    query: Encoded,
    reference: Encoded,
    scale: GowerScale,
    k: int = 2,
    query_block: int = QUERY_BLOCK,
    reference_block: int = REFERENCE_BLOCK,
    workers: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` smallest Gower distances from each query row to the reference rows.

    Args:
        workers: processes sharing the query rows (spawned for this call, one torch thread
            each); 1 measures them in this process. The answer is the same for any number.

    Returns:
        ``(distances, indices)``, both ``(len(query), k)``, ascending along each row;
        indices point into ``reference``. With fewer than ``k`` reference rows the
        missing places hold ``inf`` and ``-1``.
    """
    if len(reference) == 0:
        raise ValueError("no reference rows to measure distances to")
    runs = min(workers, -(-len(query) // query_block))  # whole query blocks per worker
    if runs > 1:
        return _nearest_in_processes(query, reference, scale, k, query_block, reference_block, runs)
    blocks = _Blocks.build(query, reference, scale)
    n = len(query)
    distances = np.full((n, k), np.inf, dtype=np.float32)
    indices = np.full((n, k), -1, dtype=np.int64)
    for q0 in range(0, n, query_block):
        q1 = min(q0 + query_block, n)
        best_d = torch.full((q1 - q0, k), float("inf"))
        best_i = torch.full((q1 - q0, k), -1, dtype=torch.int64)
        for r0 in range(0, len(reference), reference_block):
            r1 = min(r0 + reference_block, len(reference))
            block = blocks.distances(q0, q1, r0, r1)  # (q1 - q0, r1 - r0)
            d, i = torch.topk(block, min(k, r1 - r0), dim=1, largest=False)
            merged_d = torch.cat([best_d, d], dim=1)
            merged_i = torch.cat([best_i, i + r0], dim=1)
            best_d, order = torch.topk(merged_d, k, dim=1, largest=False)
            best_i = torch.gather(merged_i, 1, order)
        distances[q0:q1] = best_d.numpy()
        indices[q0:q1] = best_i.numpy()
    return distances, indices


def _nearest_in_processes(
    query: Encoded, reference: Encoded, scale: GowerScale, k: int, query_block: int, reference_block: int, runs: int
) -> tuple[np.ndarray, np.ndarray]:
    blocks = -(-len(query) // query_block)
    cuts = [query_block * (blocks * r // runs) for r in range(runs)] + [len(query)]
    pool = ProcessPoolExecutor(
        max_workers=runs,
        mp_context=multiprocessing.get_context("spawn"),  # the caller may hold threads fork does not copy safely
        initializer=_start_worker,
        initargs=(reference, scale),  # sent once per worker, not once per run
    )
    with pool:
        futures = [
            pool.submit(_nearest_in_worker, query.take(np.arange(a, b)), k, query_block, reference_block)
            for a, b in zip(cuts, cuts[1:])
        ]
        found = [future.result() for future in futures]
    return np.concatenate([d for d, _ in found]), np.concatenate([i for _, i in found])


_worker: dict = {}  # in a worker process: the reference rows and the scale


def _start_worker(reference: Encoded, scale: GowerScale) -> None:
    torch.set_num_threads(1)  # n workers on n cores
    _worker.update(reference=reference, scale=scale)


def _nearest_in_worker(query: Encoded, k: int, query_block: int, reference_block: int):
    return nearest(query, _worker["reference"], _worker["scale"], k, query_block, reference_block)


def gower_matrix(query: Encoded, reference: Encoded, scale: GowerScale | None = None) -> np.ndarray:
    """All pairwise distances, ``(len(query), len(reference))``: for small data and tests."""
    scale = scale or GowerScale.fit(query, reference)
    return _Blocks.build(query, reference, scale).distances(0, len(query), 0, len(reference)).numpy()


@dataclass
class _Blocks:
    """Both tables, scaled and split by how each column is compared, as float32 tensors."""

    q_complete: torch.Tensor  # (n, a) numbers missing nowhere, divided by their range
    r_complete: torch.Tensor
    q_incomplete: torch.Tensor  # (n, b) numbers with NaNs somewhere
    r_incomplete: torch.Tensor
    q_onehot: torch.Tensor  # (n, w) one-hot narrow categories
    r_onehot_t: torch.Tensor  # (w, m), transposed for the matrix product
    q_codes: torch.Tensor  # (n, c) wide categories' codes
    r_codes: torch.Tensor
    narrow: int  # number of one-hot encoded columns
    columns: int  # p

    @classmethod
    def build(cls, query: Encoded, reference: Encoded, scale: GowerScale) -> _Blocks:
        with np.errstate(invalid="ignore", divide="ignore"):
            factor = np.where(scale.range > 0, 1.0 / np.where(scale.range > 0, scale.range, 1.0), 0.0)
        # Clipping keeps NaN (missing) as it is.
        qn = np.clip((query.numeric - scale.minimum) * factor, 0.0, 1.0).astype(np.float32)
        rn = np.clip((reference.numeric - scale.minimum) * factor, 0.0, 1.0).astype(np.float32)
        # A constant column scales to 0 everywhere; keep its NaNs so missing still counts.
        incomplete = np.isnan(qn).any(axis=0) | np.isnan(rn).any(axis=0)
        width = np.maximum(query.codes.max(axis=0, initial=0), reference.codes.max(axis=0, initial=0)) + 1
        narrow = width <= ONE_HOT_MAX
        exact = torch.bfloat16 if narrow.sum() <= BFLOAT16_EXACT else torch.float32
        return cls(
            q_complete=torch.from_numpy(np.ascontiguousarray(qn[:, ~incomplete])),
            r_complete=torch.from_numpy(np.ascontiguousarray(rn[:, ~incomplete])),
            q_incomplete=torch.from_numpy(np.ascontiguousarray(qn[:, incomplete])),
            r_incomplete=torch.from_numpy(np.ascontiguousarray(rn[:, incomplete])),
            q_onehot=torch.from_numpy(_one_hot(query.codes[:, narrow], width[narrow])).to(exact),
            r_onehot_t=torch.from_numpy(_one_hot(reference.codes[:, narrow], width[narrow]).T.copy()).to(exact),
            q_codes=torch.from_numpy(np.ascontiguousarray(query.codes[:, ~narrow])),
            r_codes=torch.from_numpy(np.ascontiguousarray(reference.codes[:, ~narrow])),
            narrow=int(narrow.sum()),
            columns=qn.shape[1] + query.codes.shape[1],
        )

    def distances(self, q0: int, q1: int, r0: int, r1: int) -> torch.Tensor:
        """Gower distances between query rows q0:q1 and reference rows r0:r1."""
        shape = (q1 - q0, r1 - r0)
        if self.q_complete.shape[1]:
            total = torch.cdist(self.q_complete[q0:q1], self.r_complete[r0:r1], p=1)
        else:
            total = torch.zeros(shape)
        if self.narrow:
            # sum over narrow columns of 1[a != b] = narrow - (one-hot a) . (one-hot b); the
            # products are small integer counts, exact in bfloat16 up to 256, at twice the speed.
            matches = torch.mm(self.q_onehot[q0:q1], self.r_onehot_t[:, r0:r1])
            total.sub_(matches).add_(float(self.narrow))
        if self.q_codes.shape[1] or self.q_incomplete.shape[1]:
            # Preallocated buffers: a fresh 8M-element temporary per column costs more than the work.
            differs = torch.empty(shape, dtype=torch.bool)
            both = torch.empty(shape, dtype=torch.bool)
            gap = torch.empty(shape)
        for j in range(self.q_codes.shape[1]):
            torch.ne(self.q_codes[q0:q1, j, None], self.r_codes[None, r0:r1, j], out=differs)
            total.add_(differs)
        for j in range(self.q_incomplete.shape[1]):
            a = self.q_incomplete[q0:q1, j, None]
            b = self.r_incomplete[None, r0:r1, j]
            torch.sub(a, b, out=gap)
            torch.nan_to_num_(gap.abs_(), nan=1.0)  # one or both missing -> 1
            torch.logical_and(torch.isnan(a), torch.isnan(b), out=both)
            total.add_(gap.masked_fill_(both, 0.0))  # both missing -> 0
        return total.mul_(1.0 / self.columns)


def _one_hot(codes: np.ndarray, width: np.ndarray) -> np.ndarray:
    n = codes.shape[0]
    offsets = np.concatenate([[0], np.cumsum(width)[:-1]]).astype(np.int64)
    out = np.zeros((n, int(width.sum())), dtype=np.float32)
    if codes.shape[1]:
        out[np.arange(n)[:, None], codes + offsets] = 1.0
    return out


def as_gower_package_frame(table, schema):
    """``table`` as the reference ``gower`` package expects it, for agreement checks only:
    numbers as floats, categories as text with ``None`` for missing."""
    from synth.config import ColumnKind

    frame = table.select([c.name for c in schema.modelled]).to_pandas()
    for spec in schema.modelled:
        if spec.kind is ColumnKind.NUMERICAL:
            frame[spec.name] = frame[spec.name].astype(float)
        else:
            frame[spec.name] = [None if v is None or v != v else str(v) for v in frame[spec.name]]
    return frame
