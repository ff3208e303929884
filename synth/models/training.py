"""The training loop: readable top to bottom, seeded, CPU or CUDA, optionally private, resumable.

One loop serves every model. It trains on :class:`Units`: tensors whose first dimension
is the unit of learning and of privacy (a row; or a patient with its rows padded and
masked). Without DP, a seeded validation split drives early stopping and the best
epoch's weights are kept. With DP, Opacus wraps the model, optimizer and loader (see
:mod:`synth.privacy`), every unit trains, and the planned epochs run unless the epsilon
cap stops them first: stopping on a loss measured on real data would be a release the
accountant does not see, so no loss on real data is computed or kept.

With ``checkpoint_dir`` the loop saves its state after every epoch (weights, optimizer,
early-stopping state; the random generators without DP; the accountant with DP) and a
rerun resumes from the last epoch written: without DP it produces the same weights as an
uninterrupted run. With DP it resumes with fresh secure generators, the accountant as
saved, and the steps of an epoch that was cut short charged (``pending.json`` records
each epoch's steps before they are taken), so epsilon is never spent unaccounted.
A checkpoint records the data, settings, sampling rate and noise it was written for, and
is refused for any other.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from synth.config import ModelOptions, PipelineConfig
from synth.crashpoints import crash_point
from synth.errors import ModelError
from synth.io.atomic import atomic_path, write_json_atomic
from synth.models.network import MixedVAE
from synth.privacy import MeanOfUnits, PrivacyReport, PrivateTraining, TrainingBudget, as_batch, secure_torch

CHECKPOINT = "checkpoint.pt"
PENDING = "pending.json"
#: Fewer held-out patients (or rows) than this make a validation loss too noisy to stop on:
#: 10 of the MIMIC demo's 97 patients stopped training at epoch 5. Train every epoch instead.
MIN_VALIDATION_GROUPS = 50
GRADIENT_CLIP = 10.0


@dataclass
class EpochStats:
    """One epoch; ``train_loss`` is ``None`` under DP (a loss on real data is not released)."""

    epoch: int
    train_loss: float | None
    validation_loss: float | None
    seconds: float
    stage: str = ""


@dataclass
class TrainingReport:
    """What happened during training (saved beside the model, shown in metrics).

    Under DP the model folder's copy (:meth:`to_dict`) leaves out what the accountant did
    not pay for: the exact row count, the wall time and rows/s (both follow it) and the
    per-epoch history. The in-memory report keeps them for the run's own log line.
    """

    device: str
    rows: int | None
    epochs_run: int
    best_epoch: int
    stopped_early: bool
    seconds: float | None
    rows_per_second: float | None
    history: list[EpochStats] = field(default_factory=list)
    privacy: PrivacyReport = field(default_factory=lambda: PrivacyReport(enabled=False))
    resumed_from_epoch: int = 0

    def to_dict(self) -> dict:
        data = asdict(self)
        if self.privacy.enabled:
            data.update(rows=None, seconds=None, rows_per_second=None, history=[])
        return data


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
    budget: TrainingBudget | None,
    seed: int,
    on_epoch: EpochCallback | None = None,
    checkpoint_dir: str | Path | None = None,
    stage: str = "",
    fingerprint: str | None = None,
) -> TrainingReport:
    """Fit ``model`` to ``units`` in place.

    Args:
        model: an initialised network; ``model(**batch, generator=...)`` returns per-unit losses.
        units: the training data.
        options: epochs, batch size, learning rate, early stopping, device.
        budget: the DP budget of this run (see :func:`synth.privacy.plan_budget`); ``None``: no DP.
        seed: seeds the split, the batches and the reparameterisation noise. Under DP it
            seeds nothing: every draw that touches real data comes from a secure generator.
        on_epoch: called after each epoch (progress, logging).
        checkpoint_dir: save state there every epoch; resume from it when present.
        stage: a name for progress reports when a model trains several networks.
        fingerprint: the data and settings (:func:`fit_fingerprint`); a checkpoint written
            for others is refused.
    """
    device = pick_device(options.device)
    private = PrivateTraining(budget) if budget is not None else None
    if private is None:
        generator = torch.Generator().manual_seed(seed)
        device_generator = torch.Generator(device=device).manual_seed(seed + 1)
        train_units, validation = units.split(options.validation_fraction, generator)
    else:  # privacy noise, Poisson sampling and the reparameterisation draws: never from the seed
        generator, device_generator = secure_torch(), secure_torch(device)
        train_units, validation = units, None
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay)
    trained, criterion = model, MeanOfUnits()
    if private is None:
        loader = _loader(train_units, effective_batch_size(options.batch_size, len(train_units)), generator)
    else:
        batch_size = effective_batch_size(options.batch_size, round(budget.units))
        trained, optimizer, criterion, loader = private.wrap(
            model, optimizer, train_units, batch_size, options.epochs, device_generator, generator
        )
    # bf16 autocast helps on CUDA; Opacus's per-example gradients stay in full precision.
    autocast = device.type == "cuda" and private is None and options.mixed_precision

    identity = {
        "fingerprint": fingerprint,
        "stage": stage,
        "epochs": options.epochs,
        "sample_rate": 1 / private.steps if private else None,
        "noise_multiplier": private.noise_multiplier if private else None,
    }
    state = _LoopState()
    checkpoint = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir is not None else None
    if checkpoint is not None and checkpoint.is_file():
        state = _resume(checkpoint, identity, model, optimizer, generator, device_generator, private)
    if private is not None and checkpoint is not None:
        lost = _lost_steps(checkpoint, state.epoch)
        if lost:  # an epoch was cut short after its steps were taken: they are spent all the same
            private.count_steps(lost)
            _save(checkpoint, identity, state, model, optimizer, generator, device_generator, private)
        checkpoint.with_name(PENDING).unlink(missing_ok=True)  # only once the charge is saved
    resumed_from = state.epoch

    # The cap is checked step by step only when the remaining plan would pass it.
    remaining = private.steps * (options.epochs - state.epoch) if private else 0
    watch_cap = private is not None and remaining > 0 and private.spent(remaining) > budget.cap
    stopped_at_cap = False
    start = time.perf_counter()
    for epoch in range(state.epoch + 1, options.epochs + 1):
        if private is None and state.stale >= options.patience:
            break
        allowed = None
        if private is not None:
            allowed = private.steps_within_cap(private.steps) if watch_cap else private.steps
            stopped_at_cap = allowed < private.steps
            if allowed == 0:
                break
            if checkpoint is not None:
                write_json_atomic(checkpoint.with_name(PENDING), {"epoch": epoch, "steps": allowed})
        tick = time.perf_counter()
        trained.train()
        total, count = 0.0, 0
        for step, batch in enumerate(loader):
            if allowed is not None and step >= allowed:
                break
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            size = batch["x"].shape[0]
            optimizer.zero_grad(set_to_none=True)
            if size == 0:  # an empty Poisson batch: no gradient, but still a noised, counted step
                _empty_step(model, optimizer)
                continue
            with torch.autocast("cuda", dtype=torch.bfloat16) if autocast else contextlib.nullcontext():
                loss = criterion(trained(**batch, generator=device_generator))
            loss.backward()
            if private is None:  # DP clips per unit already; here one bad batch must not wreck the weights
                torch.nn.utils.clip_grad_norm_(model.parameters(), GRADIENT_CLIP)
            optimizer.step()
            if private is None:  # a loss on real rows is not released under DP
                total += loss.item() * size
                count += size
        train_loss = total / max(count, 1) if private is None else None
        val_loss = _evaluate(model, validation, options.batch_size, device, device_generator)
        stats = EpochStats(epoch, train_loss, val_loss, time.perf_counter() - tick, stage)
        state.record(stats, model, keep_best=private is None)
        if checkpoint is not None:
            _save(checkpoint, identity, state, model, optimizer, generator, device_generator, private)
        crash_point("train.epoch")
        if on_epoch is not None:
            on_epoch(stats)
        if stopped_at_cap:
            break

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
        privacy=private.report(stopped_at_cap) if private is not None else PrivacyReport(enabled=False),
        resumed_from_epoch=resumed_from,
    )


def _empty_step(model: torch.nn.Module, optimizer) -> None:
    """A DP-SGD step on an empty batch: zero gradients, then Opacus adds the noise and counts the step."""
    for parameter in model.parameters():
        if parameter.requires_grad:
            parameter.grad = torch.zeros_like(parameter)
    optimizer.step()


def fit_fingerprint(table: pa.Table, config: PipelineConfig) -> str:
    """SHA-256 of the training table's values and of the settings a fit depends on.

    A checkpoint (and the DP releases kept beside it) records it; resuming with other data
    or settings is refused instead of mixing two trainings (or two budgets).
    """
    digest = hashlib.sha256()
    settings = config.model_dump(mode="json", include=_FIT_SETTINGS)
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for name in table.column_names:
        digest.update(name.encode())
        values = table[name].to_numpy(zero_copy_only=False)
        try:
            hashed = pd.util.hash_array(values)  # nulls hash alike, whatever their Python type
        except TypeError:  # nested values (lists, structs) are not hashable as they are
            hashed = pd.util.hash_array(np.array([repr(v) for v in values], dtype=object))
        digest.update(hashed.tobytes())
    return digest.hexdigest()


_FIT_SETTINGS = {"seed", "entity_key", "columns", "drop", "transforms", "model", "privacy", "entity", "constraints"}


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
        if watched is None:  # DP: no loss on real rows, so no epoch is chosen by one
            self.best_epoch = stats.epoch
            return
        if self.best_epoch == 0 or watched < self.best_loss - 1e-4 * abs(self.best_loss):
            self.best_loss, self.best_epoch, self.stale = watched, stats.epoch, 0
            self.best_state = copy.deepcopy(model.state_dict()) if keep_best else None
        else:
            self.stale += 1


def _save(path, identity, state, model, optimizer, generator, device_generator, private) -> None:
    payload = {
        "identity": identity,
        "loop": {k: v for k, v in asdict(state).items() if k not in ("best_state", "history")},
        "history": [asdict(h) for h in state.history],
        "best_state": state.best_state,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        # Secure generators are never written: their state would let a reader replay the noise.
        "generator": generator.get_state() if private is None else None,
        "device_generator": device_generator.get_state() if private is None else None,
        "accountant": private.engine.accountant.state_dict() if private is not None else None,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _resume(path, identity, model, optimizer, generator, device_generator, private) -> _LoopState:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    saved = payload.get("identity", {})
    changed = sorted(k for k, v in identity.items() if saved.get(k) != v and (k != "fingerprint" or v is not None))
    if changed:
        raise ModelError(
            f"{path} was written for other data or settings ({', '.join(changed)} differ); "
            "delete it to train from scratch" + (" (that spends epsilon again)" if private is not None else "")
        )
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    if private is None:
        generator.set_state(payload["generator"])
        device_generator.set_state(payload["device_generator"])
    else:
        private.engine.accountant.load_state_dict(payload["accountant"])
    state = _LoopState(**payload["loop"], best_state=payload["best_state"])
    state.history = [EpochStats(**h) for h in payload["history"]]
    return state


def _lost_steps(checkpoint: Path, epoch: int) -> int:
    """Steps of an epoch that started after the last checkpoint (its ledger says how many)."""
    pending = checkpoint.with_name(PENDING)
    if not pending.is_file():
        return 0
    ledger = json.loads(pending.read_text())
    return int(ledger["steps"]) if ledger["epoch"] > epoch else 0


def _loader(units: Units, batch_size: int, generator: torch.Generator) -> DataLoader:
    return DataLoader(
        units,
        batch_size=min(batch_size, len(units)),
        sampler=RandomSampler(units, generator=generator),
        collate_fn=as_batch,
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
