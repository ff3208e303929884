"""The training loop: readable top to bottom, seeded, CPU or CUDA, optionally private.

One loop serves both modes. Without DP, a seeded validation split drives early stopping
and the best epoch's weights are kept. With DP, Opacus wraps the model, optimizer and
loader (see :mod:`synth.privacy`), every row trains, and exactly the planned epochs run:
stopping on a loss measured on real data would be a release the accountant does not see.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from synth.config import ModelOptions, PrivacyOptions
from synth.models.network import MixedVAE
from synth.privacy import PrivacyReport, PrivateTraining


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    validation_loss: float | None
    seconds: float


@dataclass
class TrainingReport:
    """What happened during training (saved beside the model, shown in metrics)."""

    device: str
    rows: int
    epochs_run: int
    best_epoch: int
    stopped_early: bool
    seconds: float
    rows_per_second: float
    history: list[EpochStats] = field(default_factory=list)
    privacy: PrivacyReport = field(default_factory=lambda: PrivacyReport(enabled=False))

    def to_dict(self) -> dict:
        return asdict(self)


EpochCallback = Callable[[EpochStats], None]
GRADIENT_CLIP = 10.0


def pick_device(preference: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU."""
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was requested but no CUDA device is available")
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(preference)


def train(
    model: MixedVAE,
    matrix: np.ndarray,
    options: ModelOptions,
    privacy: PrivacyOptions,
    seed: int,
    on_epoch: EpochCallback | None = None,
) -> TrainingReport:
    """Fit ``model`` to the segment ``matrix`` (rows x segments) in place.

    Args:
        model: an initialised network.
        matrix: the transformed training data.
        options: epochs, batch size, learning rate, early stopping.
        privacy: DP settings; DP is on when ``privacy.epsilon`` is set.
        seed: seeds the split, the batches, the reparameterisation noise and the DP noise.
        on_epoch: called after each epoch (progress bars, logging, checkpoints).
    """
    device = pick_device(options.device)
    generator = torch.Generator().manual_seed(seed)
    device_generator = torch.Generator(device=device).manual_seed(seed + 1)
    data = torch.as_tensor(matrix, dtype=torch.float32)
    train_rows, validation = _split(data, options.validation_fraction if not privacy.enabled else 0.0, generator)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay)
    loader = _loader(train_rows, options.batch_size, generator)

    private = PrivateTraining(privacy, units=len(train_rows)) if privacy.enabled else None
    trained = model
    if private is not None:
        trained, optimizer, loader = private.wrap(model, optimizer, loader, options.epochs, device_generator)

    history: list[EpochStats] = []
    best_loss, best_epoch, best_state, stale = float("inf"), 0, None, 0
    start = time.perf_counter()
    for epoch in range(1, options.epochs + 1):
        tick = time.perf_counter()
        trained.train()
        total, count = 0.0, 0
        for (batch,) in loader:
            batch = batch.to(device, non_blocking=True)
            if batch.shape[0] == 0:
                continue  # an empty Poisson batch: nothing to learn, the accountant still counts the step
            optimizer.zero_grad(set_to_none=True)
            loss = trained(batch, generator=device_generator).mean()
            loss.backward()
            if private is None:  # DP clips per example already; here one bad batch must not wreck the weights
                torch.nn.utils.clip_grad_norm_(model.parameters(), GRADIENT_CLIP)
            optimizer.step()
            total += loss.item() * batch.shape[0]
            count += batch.shape[0]
        train_loss = total / max(count, 1)
        val_loss = _evaluate(model, validation, options.batch_size, device, device_generator)
        stats = EpochStats(epoch, train_loss, val_loss, time.perf_counter() - tick)
        history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)

        watched = val_loss if val_loss is not None else train_loss
        if best_epoch == 0 or watched < best_loss - 1e-4 * abs(best_loss):
            best_loss, best_epoch, stale = watched, epoch, 0
            best_state = copy.deepcopy(model.state_dict()) if private is None else None
        else:
            stale += 1
        if private is None and stale >= options.patience:
            break

    if best_state is not None:
        model.load_state_dict(best_state)  # non-private runs keep their best validation epoch
    if private is not None:
        _unwrap(trained)
    seconds = time.perf_counter() - start
    epochs_run = len(history)
    return TrainingReport(
        device=str(device),
        rows=len(train_rows),
        epochs_run=epochs_run,
        best_epoch=best_epoch if private is None else epochs_run,
        stopped_early=epochs_run < options.epochs,
        seconds=seconds,
        rows_per_second=len(train_rows) * epochs_run / seconds if seconds > 0 else float("nan"),
        history=history,
        privacy=private.report(optimizer) if private is not None else PrivacyReport(enabled=False),
    )


class _Rows(Dataset):
    """A tensor whose batches are taken in one indexing operation (no per-row collation)."""

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def __getitem__(self, index):
        return (self.tensor[index],)

    def __getitems__(self, indices: list[int]):
        return (self.tensor[torch.as_tensor(indices, dtype=torch.long)],)


def _as_batch(batch):
    return batch


def _loader(rows: torch.Tensor, batch_size: int, generator: torch.Generator) -> DataLoader:
    dataset = _Rows(rows)
    sampler = RandomSampler(dataset, generator=generator)
    return DataLoader(
        dataset,
        batch_size=min(batch_size, len(dataset)),
        sampler=sampler,
        collate_fn=_as_batch,
        generator=generator,
        pin_memory=torch.cuda.is_available(),
    )


def _split(data: torch.Tensor, fraction: float, generator: torch.Generator):
    n_validation = int(round(len(data) * fraction))
    if n_validation == 0 or len(data) - n_validation < 2:
        return data, None
    order = torch.randperm(len(data), generator=generator)
    return data[order[n_validation:]], data[order[:n_validation]]


@torch.no_grad()
def _evaluate(model, rows, batch_size, device, generator) -> float | None:
    if rows is None:
        return None
    model.eval()
    total = 0.0
    batches = BatchSampler(SequentialSampler(range(len(rows))), batch_size, drop_last=False)
    for index in batches:
        batch = rows[index].to(device)
        total += model(batch, generator=generator).sum().item()
    return total / len(rows)


def _unwrap(private_model) -> None:
    """Remove Opacus's hooks so the plain model can be saved and sampled."""
    remove = getattr(private_model, "_close", None) or getattr(private_model, "remove_hooks", None)
    if callable(remove):
        remove()
