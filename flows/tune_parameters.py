"""The tune flow's parameters: one pydantic model (a form in the Prefect UI), importable without Prefect or torch,
so the command checks its flags in a second.

Kept apart from :mod:`flows.parameters` so the tune flow arrives as new files only.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

from synth.io.uri import is_remote


class TuneParameters(BaseModel):
    """Search the model's settings on validation quality and closeness to training rows."""

    source: str = Field(description="the real extract: a CSV/Parquet file, folder or glob")
    output: str = Field(description="local output folder for tuned.yaml (the config to rerun) and trials.csv")
    config_path: str | None = Field(default=None, description="YAML config; its model.epochs bounds each trial's")
    trials: int = Field(default=20, ge=1, description="at most this many trials")
    timeout_seconds: float | None = Field(
        default=None, gt=0, description="no new batch of trials starts after this many seconds (none: no limit)"
    )
    min_privacy_ratio: float = Field(
        default=0.9, gt=0,  # synth.tuning.DEFAULT_MIN_PRIVACY_RATIO (a heavy import)
        description="the chosen trial's median DCR to the training rows is at least this share of unseen rows' "
        "(0.9 matches the release gate's default dcr_tolerance 0.1)",
    )
    seed: int | None = Field(default=None, ge=0, description="seeds the split, the sampler and every trial")
    workers: int = Field(default=2, ge=1, description="trials run at once (one batch asked from the study)")
    work_dir: str | None = Field(
        default=None, description="folder for real-data intermediates (default: ~/.cache/synth-pipeline/work)"
    )

    @field_validator("config_path", "work_dir", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("output")
    @classmethod
    def _local(cls, value: str) -> str:
        if is_remote(value):
            raise ValueError("tuning writes to a local folder; copy tuned.yaml where it is needed")
        return value

    def overrides(self) -> dict:
        return {"seed": self.seed} if self.seed is not None else {}
