"""The row-level synthesizer: one mixed-type VAE over the whole table.

Every row is a unit of learning and of privacy. Use it for extracts without an entity
key (or to ignore one); :mod:`synth.models.patient` models patients and their rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import torch

from synth.constraints import violations
from synth.frames import to_model_frame
from synth.models.base import REJECTION_ROUNDS, Synthesizer, summary_report
from synth.models.table_vae import TableVAE
from synth.models.training import EpochCallback, Units
from synth.privacy import PrivacyReport, combine, plan_budget


class VAESynthesizer(Synthesizer):
    """Variational autoencoder with Gaussian and softmax heads, optionally trained with DP."""

    name = "vae"

    def _fit(
        self, table: pa.Table, on_epoch: EpochCallback | None = None, checkpoint_dir: str | Path | None = None, **_: Any
    ) -> None:
        frame = to_model_frame(table, self.schema_)
        privacy = self.config.privacy
        budget = plan_budget(privacy, len(frame), {"rows": 1.0}) if privacy.enabled else None
        self.table_ = TableVAE(self.config, self.config.seed)
        self.table_.fit_transformer(frame, self.schema_, budget.transforms if budget else None)
        units = Units(torch.as_tensor(self.table_.matrix(frame), dtype=torch.float32))
        report = self.table_.train(units, budget.trainings["rows"] if budget else privacy, on_epoch, checkpoint_dir)
        self.privacy_ = combine(budget, {"rows": report.privacy}, unit="row") if budget else PrivacyReport(False)
        self.training_ = summary_report([report], self.privacy_)

    def _sample_frame(self, n: int, generator: torch.Generator, start: int) -> pd.DataFrame:
        frame = self.table_.reverse(self.table_.generate(n, generator))
        constraints = self._rejection_constraints()
        for _ in range(REJECTION_ROUNDS if constraints else 0):
            bad = violations(frame, constraints)
            if not bad.any():
                break
            # Rows are exchangeable here, so redrawn rows simply replace the rejected ones.
            redraw = self.table_.reverse(self.table_.generate(int(bad.sum()), generator))
            frame = pd.concat([frame[~bad], redraw], ignore_index=True)
        return frame

    def _save(self, folder: Path) -> None:
        self.table_.save(folder)

    def _load(self, folder: Path) -> None:
        self.table_ = TableVAE.load(folder, self.config, self.config.seed)
