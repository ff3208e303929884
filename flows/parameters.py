"""Flow parameters as pydantic models, so the Prefect UI renders a proper form; the flows' timeout."""

from __future__ import annotations

import math
import os
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from synth.errors import ConfigError
from synth.io.uri import is_remote

FLOW_TIMEOUT_ENV = "SYNTH_FLOW_TIMEOUT_SECONDS"
DEFAULT_FLOW_TIMEOUT_SECONDS = 24 * 3600


def flow_timeout_seconds() -> float:
    """How long one flow run may take before Prefect ends it as ``TimedOut`` (a Failed state).

    A deployment with ``concurrency_limit: 1`` starts the next run only when the last one
    ends: a run that hangs must end. A crashed worker releases its slot by itself (Prefect
    renews the slot's lease only while the run's process lives); a *hung* one would hold it
    forever. The default, 24 hours, is many times a monthly run at 10 million rows on CPU
    and still frees the slot the next day. Set ``SYNTH_FLOW_TIMEOUT_SECONDS`` in the
    worker's environment (``job_variables: {env: ...}`` in ``prefect.yaml``) to change it;
    it is read when the flows are imported, as Prefect fixes a flow's timeout there.

    Raises:
        ConfigError: the variable is not a positive number of seconds.
    """
    value = os.environ.get(FLOW_TIMEOUT_ENV, "").strip()
    if not value:
        return DEFAULT_FLOW_TIMEOUT_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ConfigError(f"{FLOW_TIMEOUT_ENV}={value!r}: give the flow timeout as a positive number of seconds")
    return seconds


def _none_if_blank(value: Any) -> Any:
    # A form field left empty in the UI (or a missing Prefect variable) arrives as "".
    return None if isinstance(value, str) and not value.strip() else value


def _run_overrides(epochs: int | None, rows: int | None, seed: int | None, keep_work: bool | None) -> dict:
    """The config sections every training run's form overrides (unset fields keep the config's values)."""
    return {
        "model": {"epochs": epochs},
        "sampling": {"rows": rows},
        **({"seed": seed} if seed is not None else {}),
        **({"keep_work": keep_work} if keep_work is not None else {}),
    }


class GenerateParameters(BaseModel):
    """Train on a real extract and generate synthetic data."""

    source: str = Field(
        description="the real extract: a CSV/Parquet file, folder or glob (a path or an s3:// / abfs:// URI), "
        "or sql:<query or table> (connection URL from the SYNTH_SQL_URL environment variable)"
    )
    output: str = Field(
        description="output folder or URI: synthetic/, model/, metrics.json, report.html, manifest.json; "
        "{month} is replaced by the run's scheduled month (YYYY-MM)"
    )
    config_path: str | None = Field(default=None, description="YAML config overriding inferred column kinds")
    rows: int | None = Field(default=None, ge=1, description="synthetic rows (default: as many as the extract)")
    epochs: int | None = Field(default=None, ge=1, description="maximum training epochs")
    seed: int | None = Field(default=None, ge=0, description="seed for every random step")
    dp_epsilon: float | None = Field(default=None, gt=0, description="differential privacy budget (off if empty)")
    expectation_suite: str | None = Field(
        default=None, description="Great Expectations suite JSON merged over the one built from the schema"
    )
    sql_table: str | None = Field(default=None, description="also write the synthetic rows to this SQL table")
    sql_url_secret: str | None = Field(
        default=None,
        description="Prefect Secret block holding the SQLAlchemy URL of sql: sources and sinks (read at run time; "
        "else the SYNTH_SQL_URL environment variable)",
    )
    sql_mode: Literal["replace", "append"] = Field(
        default="replace", description="replace the SQL table or append to it"
    )
    workers: int | None = Field(default=None, ge=1, description="local Dask worker processes for preprocessing")
    dask_address: str | None = Field(
        default=None,
        description="an existing Dask scheduler (e.g. tcp://dask-scheduler:8786) instead of a local cluster",
    )
    work_dir: str | None = Field(
        default=None, description="folder for real-data intermediates (default: ~/.cache/synth-pipeline/work)"
    )
    keep_work: bool | None = Field(
        default=None,
        description="keep the work folder (real-data intermediates) after a completed run (default: the config's "
        "keep_work, false: deleted)",
    )
    verbose: bool = Field(
        default=False, description="also log Dask's own INFO lines (scheduler, nanny, worker registration)"
    )

    _blank_is_unset = field_validator(
        "config_path", "expectation_suite", "sql_table", "sql_url_secret", "dask_address", "work_dir", mode="before"
    )(_none_if_blank)

    def overrides(self) -> dict:
        """The config sections these parameters override."""
        return {
            **_run_overrides(self.epochs, self.rows, self.seed, self.keep_work),
            "privacy": {"epsilon": self.dp_epsilon},
            "validation": {"suite": self.expectation_suite},
            "preprocess": {"workers": self.workers, "dask_address": self.dask_address},
        }


class RelationalParameters(BaseModel):
    """Train on a relational extract (the config's ``tables:``) and generate synthetic tables."""

    output: str = Field(description="output folder: synthetic/<table>/, model/, metrics.json, report.html, "
                        "manifest.json")
    config_path: str = Field(description="YAML config with a tables: section (each table's source and keys)")
    rows: int | None = Field(default=None, ge=1, description="synthetic root rows (default: as many as the real root)")
    epochs: int | None = Field(default=None, ge=1, description="maximum training epochs")
    seed: int | None = Field(default=None, ge=0, description="seed for every random step")
    dp_epsilon: float | None = Field(
        default=None, gt=0, description="differential privacy budget, the patient being the unit across all tables "
        "(off if empty)"
    )
    sql_prefix: str | None = Field(
        default=None, description="also write every synthetic table to SQL as <prefix><table>, with its keys and "
        "constraints, in one transaction (replacing earlier ones)"
    )
    sql_url_secret: str | None = Field(
        default=None, description="Prefect Secret block holding the SQLAlchemy URL of sql: tables and the SQL sink"
    )
    work_dir: str | None = Field(
        default=None, description="folder for real-data intermediates (default: ~/.cache/synth-pipeline/work)"
    )
    keep_work: bool | None = Field(default=None, description="keep the work folder after a completed run")

    _blank_is_unset = field_validator("sql_prefix", "sql_url_secret", "work_dir", mode="before")(_none_if_blank)

    def overrides(self) -> dict:
        """The config sections these parameters override."""
        return {**_run_overrides(self.epochs, self.rows, self.seed, self.keep_work),
                "privacy": {"epsilon": self.dp_epsilon}}


class SampleParameters(BaseModel):
    """Generate new synthetic data from a saved model (no retraining)."""

    model: str = Field(description="model folder written by a generate run")
    rows: int = Field(ge=1, description="synthetic rows")
    output: str = Field(description="output folder for synthetic/ parts")
    seed: int = Field(default=0, ge=0, description="seed; a new month's data: a new seed")
    chunk_rows: int = Field(default=100_000, ge=1, description="rows per Parquet part")
    workers: int = Field(
        default=1, ge=1, description="local worker processes writing parts at once (the same bytes for any number)"
    )
    dask_address: str | None = Field(
        default=None, description="an existing Dask scheduler to write the parts on instead (its workers must read "
        "the model folder and the output folder)",
    )

    _blank_is_unset = field_validator("dask_address", mode="before")(_none_if_blank)


class EvaluateParameters(BaseModel):
    """Judge any synthetic table against a real one (synthetic data made elsewhere too)."""

    real: str = Field(description="the real table: CSV/Parquet file, folder or glob")
    synthetic: str = Field(description="the synthetic table: CSV/Parquet file, folder or glob")
    output: str = Field(description="output folder for metrics.json and report.html")
    holdout: str | None = Field(
        default=None,
        description="real rows the generator never saw; without it the gate cannot pass "
        "(a seeded split of the real table stands in, and the generator may have seen it)",
    )
    model: str | None = Field(default=None, description="model folder whose schema and privacy budget are used")
    config_path: str | None = Field(default=None, description="YAML config: read options, evaluation and gate")
    target: str | None = Field(default=None, description="column for the TSTR utility check")
    entity_key: str | None = Field(
        default=None, description="the patient identifier column, when schema inference does not find it"
    )
    seed: int | None = Field(default=None, ge=0, description="seed for every sample and model")

    _blank_is_unset = field_validator(
        "holdout", "model", "config_path", "target", "entity_key", mode="before"
    )(_none_if_blank)

    def overrides(self) -> dict:
        """The config sections these parameters override."""
        return {
            "evaluation": {"target": self.target},
            **({"entity_key": self.entity_key} if self.entity_key is not None else {}),
            **({"seed": self.seed} if self.seed is not None else {}),
        }


class _OnExtract(BaseModel):
    """What the studies of one extract share (comparison, ε sweep, tuning): its source, config, seed, work folder."""

    source: str = Field(
        description="the real extract: a CSV/Parquet file, folder or glob (a path or an s3:// / abfs:// URI)"
    )
    config_path: str | None = Field(
        default=None, description="YAML config shared by every variant or trial (columns, model, evaluation, gate)"
    )
    seed: int | None = Field(default=None, ge=0, description="seed for the split, every fit, sample and check")
    work_dir: str | None = Field(
        default=None, description="folder for real-data intermediates (default: ~/.cache/synth-pipeline/work)"
    )

    _blank_is_unset = field_validator("config_path", "work_dir", mode="before")(_none_if_blank)

    def overrides(self) -> dict:
        """The config sections these parameters override."""
        return {"seed": self.seed} if self.seed is not None else {}


class _StudyParameters(_OnExtract):
    """What a comparison and an ε sweep share: one extract, one split, one evaluation."""

    output: str = Field(
        description="output folder: compare.csv, compare.md, compare.html, and variants/<name>/ (model, metrics.json)"
    )
    rows: int | None = Field(
        default=None, ge=1, description="synthetic rows per variant (default: as many as the training split)"
    )

    def overrides(self) -> dict:
        return {"sampling": {"rows": self.rows}, **super().overrides()}


class CompareParameters(_StudyParameters):
    """Several synthesizers on the same split, judged by the same evaluation and gate."""

    models: list[str] | None = Field(
        default=None,
        description="registered model names (auto: the VAE suited to the extract); default: auto and every baseline",
    )

    @field_validator("models", mode="before")
    @classmethod
    def _known_models(cls, value: Any) -> Any:
        from synth.compare import check_models

        if isinstance(value, str):
            value = [v.strip() for v in value.split(",")]
        if not value:
            return None
        try:
            return check_models(list(value))
        except ConfigError as error:
            raise ValueError(str(error)) from None


class SweepParameters(_StudyParameters):
    """The DP VAE (the patient as the unit when the extract has an entity key) over several privacy budgets."""

    epsilons: list[float | None] = Field(
        default=[0.5, 1.0, 3.0, 10.0, None],  # a plain default, so the form shows it
        description="privacy budgets ε > 0; empty (null) or inf: no differential privacy",
    )

    @field_validator("epsilons", mode="before")
    @classmethod
    def _infinite_is_none(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        return [None if v is None or str(v).strip().lower() in ("", "inf", "∞", "none") else v for v in value]

    @field_validator("epsilons")
    @classmethod
    def _positive(cls, value: list[float | None]) -> list[float | None]:
        bad = [e for e in value if e is not None and not e > 0]
        if bad or not value:
            raise ValueError(f"give privacy budgets ε > 0 (or inf), got {bad or 'none'}")
        return [None if e is not None and math.isinf(e) else e for e in value]


class TuneParameters(_OnExtract):
    """Search the model's settings on validation quality and closeness to training rows."""

    output: str = Field(description="local output folder for tuned.yaml (the config to rerun) and trials.csv")
    trials: int = Field(default=20, ge=1, description="at most this many trials")
    timeout_seconds: float | None = Field(
        default=None, gt=0, description="no new batch of trials starts after this many seconds (none: no limit)"
    )
    min_privacy_ratio: float = Field(
        default=0.9, gt=0,  # synth.tuning.DEFAULT_MIN_PRIVACY_RATIO (a heavy import)
        description="the chosen trial's median DCR to the training rows is at least this share of unseen rows' "
        "(0.9 matches the release gate's default dcr_tolerance 0.1)",
    )
    workers: int = Field(default=2, ge=1, description="trials run at once (one batch asked from the study)")

    @field_validator("output")
    @classmethod
    def _local(cls, value: str) -> str:
        if is_remote(value):
            raise ValueError("tuning writes to a local folder; copy tuned.yaml where it is needed")
        return value
