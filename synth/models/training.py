"""The training loop: readable top to bottom, seeded, CPU or CUDA, optionally private, resumable.

One loop serves every model. It trains on :class:`Units`: tensors whose first dimension
is the unit of learning and of privacy (a row; or a patient with its rows padded and
masked). Without DP, a seeded validation split drives early stopping and the best
epoch's weights are kept. With DP, Opacus wraps the model, optimizer and loader (see
:mod:`synth.privacy`), every unit trains, and exactly the planned epochs run: stopping
on a loss measured on real data would be a release the accountant does not see.

With ``checkpoint_dir`` the loop saves its whole state after every epoch (weights,
optimizer, random generators, DP accountant, early-stopping state) and a rerun resumes
from the last epoch written, producing the same weights as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from synth.config import ModelOptions, PrivacyOptions
from synth.io.atomic import atomic_path
from synth.models.network import MixedVAE
from synth.privacy import MeanOfUnits, PrivacyReport, PrivateTraining

CHECKPOINT = "checkpoint.pt"
#: Fewer held-out patients (or rows) than this make a validation loss too noisy to stop on:
#: 10 of the MIMIC demo's 97 patients stopped training at epoch 5. Train every epoch instead.
MIN_VALIDATION_GROUPS = 50
GRADIENT_CLIP = 10.0


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    validation_loss: float | None
    seconds: float
    stage: str = ""


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
    resumed_from_epoch: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


EpochCallback = Callable[[EpochStats], None]


class Units(Dataset):
    """Training units: ``x`` (N, ..., S), optional ``condition`` (N, ..., E) and ``mask`` (N, R).

    Batches are taken in one indexing operation per tensor (no per-row collation).
    ``rows`` is the number of real rows the units hold (for rows/s).
    """

    def __init__(
        self,
        x: torch.Tensor,
        condition: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        groups: torch.Tensor | None = None,
    ):
        self.tensors = {"x": x}
        if condition is not None:
            self.tensors["condition"] = condition
        if mask is not None:
            self.tensors["mask"] = mask
        self.groups = groups  # e.g. each row's patient: validation then holds out whole patients
        self.rows = int(mask.sum()) if mask is not None else x.shape[0]

    def __len__(self) -> int:
        return self.tensors["x"].shape[0]

    def __getitem__(self, index):
        return {k: v[index] for k, v in self.tensors.items()}

    def __getitems__(self, indices: list[int]):
        index = torch.as_tensor(indices, dtype=torch.long)
        return {k: v[index] for k, v in self.tensors.items()}

    def split(self, fraction: float, generator: torch.Generator) -> tuple[Units, Units | None]:
        """(training units, validation units): ``fraction`` of the groups (or units) held out.

        No validation (``None``) when that would hold out fewer than ``MIN_VALIDATION_GROUPS``.
        """
        groups = self.groups if self.groups is not None else torch.arange(len(self))
        labels, codes = torch.unique(groups, return_inverse=True)
        n_validation = int(round(len(labels) * fraction))
        if n_validation < MIN_VALIDATION_GROUPS:
            return self, None
        held = torch.zeros(len(labels), dtype=torch.bool)
        held[torch.randperm(len(labels), generator=generator)[:n_validation]] = True
        in_validation = held[codes]
        return self._take(torch.nonzero(~in_validation).squeeze(1)), self._take(torch.nonzero(in_validation).squeeze(1))

    def _take(self, index: torch.Tensor) -> Units:
        picked = {k: v[index] for k, v in self.tensors.items()}
        groups = self.groups[index] if self.groups is not None else None
        return Units(picked["x"], picked.get("condition"), picked.get("mask"), groups)


class PatientUnits(Units):
    """Patients as units: each batch is (patients, rows, ...) padded to its longest patient.

    Rows are stored flat, patient after patient; ``sizes`` gives each patient's row count.
    A patient with more than ``max_rows`` rows contributes a seeded random subset of them
    (the contribution bound of patient-level DP).
    """

    def __init__(
        self, x: torch.Tensor, condition: torch.Tensor, sizes: torch.Tensor, max_rows: int, generator: torch.Generator
    ):
        starts = torch.cumsum(sizes, 0) - sizes
        keep = []
        for start, size in zip(starts.tolist(), sizes.tolist()):
            rows = torch.arange(start, start + size)
            keep.append(rows if size <= max_rows else rows[torch.randperm(size, generator=generator)[:max_rows]].sort()[0])
        self.index = keep  # per patient, the flat row positions it contributes
        self.flat_x, self.flat_condition = x, condition
        self.rows = sum(len(k) for k in keep)
        self.tensors = {"x": x}  # for shape queries only; batches are built in __getitems__

    def __len__(self) -> int:
        return len(self.index)

    def __getitems__(self, indices: list[int]):
        chosen = [self.index[i] for i in indices]
        longest = max((len(c) for c in chosen), default=1)
        x = torch.zeros((len(chosen), longest, self.flat_x.shape[1]))
        condition = torch.zeros((len(chosen), longest, self.flat_condition.shape[1]))
        mask = torch.zeros((len(chosen), longest), dtype=torch.bool)
        for j, rows in enumerate(chosen):
            x[j, : len(rows)] = self.flat_x[rows]
            condition[j, : len(rows)] = self.flat_condition[rows]
            mask[j, : len(rows)] = True
        return {"x": x, "condition": condition, "mask": mask}

    def __getitem__(self, index):
        return self.__getitems__([index])

    def split(self, fraction: float, generator: torch.Generator):
        return self, None  # patient units are only used under DP, which trains on every unit


def effective_batch_size(batch_size: int, units: int) -> int:
    """``batch_size``, shrunk on small data so an epoch still takes at least 16 steps.

    A 900-row extract in batches of 512 gets two steps an epoch and stays undertrained
    whatever the epoch count; 16 steps (batches of at least 32) fixes that.
    """
    return max(1, min(batch_size, max(32, units // 16), units))


def pick_device(preference: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU."""
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was requested but no CUDA device is available")
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(preference)


def train(
    model: MixedVAE,
    units: Units,
    options: ModelOptions,
    privacy: PrivacyOptions,
    seed: int,
    on_epoch: EpochCallback | None = None,
    checkpoint_dir: str | Path | None = None,
    stage: str = "",
) -> TrainingReport:
    """Fit ``model`` to ``units`` in place.

    Args:
        model: an initialised network; ``model(**batch, generator=...)`` returns per-unit losses.
        units: the training data.
        options: epochs, batch size, learning rate, early stopping, device.
        privacy: DP settings; DP is on when ``privacy.epsilon`` is set.
        seed: seeds the split, the batches, the reparameterisation noise and the DP noise.
        on_epoch: called after each epoch (progress, logging).
        checkpoint_dir: save state there every epoch; resume from it when present.
        stage: a name for progress reports when a model trains several networks.
    """
    device = pick_device(options.device)
    generator = torch.Generator().manual_seed(seed)
    device_generator = torch.Generator(device=device).manual_seed(seed + 1)
    train_units, validation = units.split(options.validation_fraction if not privacy.enabled else 0.0, generator)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay)
    loader = _loader(train_units, effective_batch_size(options.batch_size, len(train_units)), generator)

    private = PrivateTraining(privacy, units=len(train_units)) if privacy.enabled else None
    trained, criterion = model, MeanOfUnits()
    if private is not None:
        trained, optimizer, criterion, loader = private.wrap(model, optimizer, loader, options.epochs, device_generator)
    # bf16 autocast helps on CUDA; Opacus's per-example gradients stay in full precision.
    autocast = device.type == "cuda" and private is None and options.mixed_precision

    state = _LoopState()
    checkpoint = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir is not None else None
    if checkpoint is not None and checkpoint.is_file():
        state = _resume(checkpoint, model, optimizer, generator, device_generator, private)
    resumed_from = state.epoch

    start = time.perf_counter()
    for epoch in range(state.epoch + 1, options.epochs + 1):
        if private is None and state.stale >= options.patience:
            break
        tick = time.perf_counter()
        trained.train()
        total, count = 0.0, 0
        for batch in loader:
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            size = batch["x"].shape[0]
            if size == 0:
                continue  # an empty Poisson batch: nothing to learn, the accountant still counts the step
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.bfloat16) if autocast else contextlib.nullcontext():
                loss = criterion(trained(**batch, generator=device_generator))
            loss.backward()
            if private is None:  # DP clips per unit already; here one bad batch must not wreck the weights
                torch.nn.utils.clip_grad_norm_(model.parameters(), GRADIENT_CLIP)
            optimizer.step()
            total += loss.item() * size
            count += size
        train_loss = total / max(count, 1)
        val_loss = _evaluate(model, validation, options.batch_size, device, device_generator)
        stats = EpochStats(epoch, train_loss, val_loss, time.perf_counter() - tick, stage)
        state.record(stats, model, keep_best=private is None)
        if checkpoint is not None:
            _save(checkpoint, state, model, optimizer, generator, device_generator, private)
        if on_epoch is not None:
            on_epoch(stats)

    if state.best_state is not None:
        model.load_state_dict(state.best_state)  # non-private runs keep their best validation epoch
    if private is not None:
        _unwrap(trained)
    seconds = time.perf_counter() - start
    epochs_this_run = state.epoch - resumed_from
    return TrainingReport(
        device=str(device),
        rows=train_units.rows,
        epochs_run=state.epoch,
        best_epoch=state.best_epoch if private is None else state.epoch,
        stopped_early=state.epoch < options.epochs,
        seconds=seconds,
        rows_per_second=train_units.rows * epochs_this_run / seconds if seconds > 0 and epochs_this_run else 0.0,
        history=state.history,
        privacy=private.report(optimizer) if private is not None else PrivacyReport(enabled=False),
        resumed_from_epoch=resumed_from,
    )


@dataclass
class _LoopState:
    """Early-stopping bookkeeping, saved with every checkpoint."""

    epoch: int = 0
    best_loss: float = float("inf")
    best_epoch: int = 0
    stale: int = 0
    best_state: dict | None = None
    history: list[EpochStats] = field(default_factory=list)

    def record(self, stats: EpochStats, model: torch.nn.Module, keep_best: bool) -> None:
        self.epoch = stats.epoch
        self.history.append(stats)
        watched = stats.validation_loss if stats.validation_loss is not None else stats.train_loss
        if self.best_epoch == 0 or watched < self.best_loss - 1e-4 * abs(self.best_loss):
            self.best_loss, self.best_epoch, self.stale = watched, stats.epoch, 0
            self.best_state = copy.deepcopy(model.state_dict()) if keep_best else None
        else:
            self.stale += 1


def _save(path, state, model, optimizer, generator, device_generator, private) -> None:
    payload = {
        "loop": {k: v for k, v in asdict(state).items() if k not in ("best_state", "history")},
        "history": [asdict(h) for h in state.history],
        "best_state": state.best_state,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "generator": generator.get_state(),
        "device_generator": device_generator.get_state(),
        "accountant": private.engine.accountant.state_dict() if private is not None else None,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _resume(path, model, optimizer, generator, device_generator, private) -> _LoopState:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    generator.set_state(payload["generator"])
    device_generator.set_state(payload["device_generator"])
    if private is not None and payload["accountant"] is not None:
        private.engine.accountant.load_state_dict(payload["accountant"])
    state = _LoopState(**payload["loop"], best_state=payload["best_state"])
    state.history = [EpochStats(**h) for h in payload["history"]]
    return state


def _as_batch(batch):
    return batch


def _loader(units: Units, batch_size: int, generator: torch.Generator) -> DataLoader:
    return DataLoader(
        units,
        batch_size=min(batch_size, len(units)),
        sampler=RandomSampler(units, generator=generator),
        collate_fn=_as_batch,
        generator=generator,
        pin_memory=torch.cuda.is_available(),
    )


@torch.no_grad()
def _evaluate(model, units: Units | None, batch_size, device, generator) -> float | None:
    if units is None:
        return None
    model.eval()
    total = 0.0
    for start in range(0, len(units), batch_size):
        batch = units.__getitems__(list(range(start, min(start + batch_size, len(units)))))
        batch = {k: v.to(device) for k, v in batch.items()}
        total += model(**batch, generator=generator).sum().item()
    return total / len(units)


def _unwrap(private_model) -> None:
    """Remove Opacus's hooks so the plain model can be saved and sampled."""
    remove = getattr(private_model, "_close", None) or getattr(private_model, "remove_hooks", None)
    if callable(remove):
        remove()
