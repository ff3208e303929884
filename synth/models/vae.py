"""The row-level synthesizer: one mixed-type VAE over the whole table.

Every row is a unit of learning and of privacy. Use it for extracts without an entity
key; :mod:`synth.models.patient` models patients and their rows. With DP it refuses an
extract that has an entity key: its guarantee would protect rows, not the patients who
hold several of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import torch

from synth import dp_domain
from synth.constraints import violations
from synth.errors import PrivacyError
from synth.frames import to_model_frame
from synth.models.base import REJECTION_ROUNDS, Synthesizer, summary_report
from synth.models.table_vae import DOMAIN_JSON, TableVAE
from synth.models.training import EpochCallback, Units, fit_fingerprint
from synth.privacy import PrivacyReport, Releases, combine, plan_budget, secure_numpy


class VAESynthesizer(Synthesizer):
    """Variational autoencoder with Gaussian and softmax heads, optionally trained with DP."""

    name = "vae"

    def _fit(
        self, table: pa.Table, on_epoch: EpochCallback | None = None, checkpoint_dir: str | Path | None = None, **_: Any
    ) -> None:
        privacy, schema = self.config.privacy, self.schema_
        if privacy.enabled and schema.entity_key is not None:
            raise PrivacyError(
                f"model.name: vae makes each row the unit of privacy, but the extract has an entity key "
                f"({schema.entity_key!r}): a patient with several rows would be protected only row by row. "
                "Use model.name: auto or patient-vae (the patient is the unit of privacy)."
            )
        frame = to_model_frame(table, schema)
        fingerprint = fit_fingerprint(table, self.config) if checkpoint_dir is not None else None
        self.table_ = TableVAE(self.config, self.config.seed)
        budget = domain = None
        if privacy.enabled:
            releases = Releases(checkpoint_dir, fingerprint or "")
            budget = plan_budget(privacy, releases.unit_count(len(frame), privacy), {"rows": 1.0})
            public = dp_domain.declared_public(schema.modelled, self.config.columns)
            learn = lambda: dp_domain.learn_domain(  # noqa: E731
                frame, schema.modelled, *budget.transforms, secure_numpy(), public=public
            ).to_dict()
            domain = dp_domain.DPDomain.from_dict(releases.get("domain", learn))
            fingerprint = releases.identity() if fingerprint is not None else None
        self.table_.fit_transformer(frame, schema, domain)
        units = Units(torch.as_tensor(self.table_.matrix(frame), dtype=torch.float32))
        training = budget.trainings["rows"] if budget else None
        report = self.table_.train(units, training, on_epoch, checkpoint_dir, fingerprint=fingerprint)
        self.privacy_ = PrivacyReport(False)
        if budget is not None:
            self.privacy_ = combine(budget, {"rows": report.privacy}, "row", {"rows": DOMAIN_JSON})
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
