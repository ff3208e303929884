"""Progress lines for long tasks, through Prefect's run logger (shown in the console and the UI)."""

from __future__ import annotations

import time

from prefect import get_run_logger

from synth.models.training import EpochStats


class EpochProgress:
    """Logs training progress about every ``every_seconds`` and on each network's first and last epoch.

    A patient-level model trains two networks one after the other; each line names its
    network, and the time left is that network's own.
    """

    STAGES = {"patients": "patient model", "rows": "row model"}

    def __init__(self, total_epochs: int, every_seconds: float = 5.0):
        self.total = total_epochs
        self.every = every_seconds
        self.stage: str | None = None
        self.elapsed = self.last = 0.0
        self.logger = get_run_logger()

    def __call__(self, stats: EpochStats) -> None:
        if stats.stage != self.stage:
            self.stage, self.elapsed, self.last = stats.stage, 0.0, 0.0
        self.elapsed += stats.seconds  # the network's own epochs, so the first line already has a rate
        if self.elapsed - self.last < self.every and stats.epoch not in (1, self.total):
            return
        self.last = self.elapsed
        eta = self.elapsed / stats.epoch * (self.total - stats.epoch)
        # Under DP no loss is computed on real rows (it would be an unpaid release), so none is shown.
        loss = f": training loss {stats.train_loss:.3f}" if stats.train_loss is not None else ""
        validation = f", validation loss {stats.validation_loss:.3f}" if stats.validation_loss is not None else ""
        network = f"{self.STAGES.get(stats.stage, stats.stage)} " if stats.stage else ""
        self.logger.info(
            f"{network}epoch {stats.epoch}/{self.total}{loss}{validation} "
            f"({self.elapsed:.0f}s elapsed, at most {eta:.0f}s left)"
        )


class ChunkProgress:
    """Logs sampling progress about every ``every_seconds`` and on the last chunk."""

    def __init__(self, every_seconds: float = 5.0):
        self.every = every_seconds
        self.start = time.perf_counter()
        self.last = 0.0
        self.logger = get_run_logger()

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter() - self.start
        if now - self.last < self.every and done != total:
            return
        self.last = now
        self.logger.info(f"sampled chunk {done}/{total} ({now:.0f}s elapsed)")
