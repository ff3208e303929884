"""Flow parameters as pydantic models, so the Prefect UI renders a proper form."""

from __future__ import annotations

from pydantic import BaseModel, Field


class GenerateParameters(BaseModel):
    """Train on a real extract and generate synthetic data."""

    source: str = Field(description="CSV/Parquet file, folder or glob of the real extract")
    output: str = Field(description="output folder: synthetic/, model/, metrics.json, report.html")
    config_path: str | None = Field(default=None, description="YAML config overriding inferred column kinds")
    rows: int | None = Field(default=None, ge=1, description="synthetic rows (default: as many as the extract)")
    epochs: int | None = Field(default=None, ge=1, description="maximum training epochs")
    seed: int | None = Field(default=None, description="seed for every random step")
    dp_epsilon: float | None = Field(default=None, gt=0, description="differential privacy budget (off if empty)")

    def overrides(self) -> dict:
        """The config sections these parameters override."""
        return {
            "model": {"epochs": self.epochs},
            "privacy": {"epsilon": self.dp_epsilon},
            "sampling": {"rows": self.rows},
            **({"seed": self.seed} if self.seed is not None else {}),
        }


class SampleParameters(BaseModel):
    """Generate new synthetic data from a saved model (no retraining)."""

    model: str = Field(description="model folder written by a generate run")
    rows: int = Field(ge=1, description="synthetic rows")
    output: str = Field(description="output folder for synthetic/ parts")
    seed: int = Field(default=0, description="seed; a new month's data: a new seed")
    chunk_rows: int = Field(default=100_000, ge=1, description="rows per Parquet part")
