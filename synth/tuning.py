"""Hyperparameter tuning: the model's settings chosen on validation quality and closeness to training rows.

Each trial fits the synthesizer on the *fit* rows, samples, and is scored on two numbers,
both maximised by an Optuna two-objective study (TPE sampler, seeded from ``config.seed``):

* **quality**: SDMetrics' quality score (:mod:`synth.evaluation.quality`) of the synthetic
  rows against the *validation* rows, which the trial never trained on;
* **privacy ratio**: median DCR of synthetic rows to the fit rows, divided by the median
  DCR of the validation rows to the fit rows (Gower's distance, :mod:`synth.evaluation.distance`).
  1 means the synthetic rows are no closer to the rows they were trained on than unseen
  patients are; below 1, the model is drawing near its training rows (memorisation).

The validation rows are a seeded split of the *training* split (by patient when there is
an entity key), never the holdout: the release gate needs the holdout unseen, by the
model and by every choice made for it, or its baseline is biased.

The chosen trial is the best quality among the Pareto trials whose privacy ratio is at
least ``min_privacy_ratio`` (default 0.9: the release gate fails a median DCR more than
10% below the holdout's, ``gate.dcr_tolerance``); when none reaches it, the most private
Pareto trial, and the note says so.

Trials are asked from the study in batches (:class:`Tuner`), so a caller can run a batch
in parallel (the ``tune`` flow maps them over Prefect's workers) and tell the results
back; :func:`tune` runs the batches here, one trial after another.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pyarrow as pa
import yaml

from synth.config import PipelineConfig, parse_config
from synth.errors import SynthError
from synth.evaluation.distance import distance_scores
from synth.evaluation.encoding import encode
from synth.evaluation.quality import quality_scores
from synth.evaluation.tables import conform
from synth.holdout import split_holdout
from synth.io.atomic import write_text_atomic
from synth.models import synthesizer_for
from synth.pii.rules import generalised_table
from synth.schema import Schema

TUNED_YAML = "tuned.yaml"
TRIALS_CSV = "trials.csv"
DEFAULT_MIN_PRIVACY_RATIO = 0.9
VALIDATION_FRACTION = 0.2
#: Another seed than the holdout's: the same one would hash every training patient above the
#: holdout's cut, and a split of the training split at the same cut would be empty.
VALIDATION_SEED_OFFSET = 104_729
TUNED = ("latent_dim", "hidden_dims", "batch_size", "learning_rate", "weight_decay", "epochs")


@dataclass(frozen=True)
class SearchSpace:
    """The settings a trial may take (every one a field of :class:`synth.config.ModelOptions`).

    ``epochs`` is drawn between ``min_epochs_share`` of the config's ``model.epochs`` and
    that number: the config's epochs are the budget, fewer can be more private.
    """

    latent_dims: tuple[int, ...] = (8, 16, 32, 64)
    widths: tuple[int, ...] = (64, 128, 256, 512)
    depths: tuple[int, ...] = (1, 2, 3)
    batch_sizes: tuple[int, ...] = (128, 256, 512)
    learning_rate: tuple[float, float] = (1e-4, 3e-3)
    weight_decay: tuple[float, float] = (1e-7, 1e-3)
    min_epochs_share: float = 0.25

    def suggest(self, trial: optuna.Trial, epochs: int) -> dict[str, Any]:
        """The trial's settings, as ``model:`` entries."""
        width = trial.suggest_categorical("width", self.widths)
        depth = trial.suggest_categorical("depth", self.depths)
        low = max(1, math.ceil(epochs * self.min_epochs_share))
        return {
            "latent_dim": trial.suggest_categorical("latent_dim", self.latent_dims),
            "hidden_dims": [width] * depth,
            "batch_size": trial.suggest_categorical("batch_size", self.batch_sizes),
            "learning_rate": trial.suggest_float("learning_rate", *self.learning_rate, log=True),
            "weight_decay": trial.suggest_float("weight_decay", *self.weight_decay, log=True),
            "epochs": trial.suggest_int("epochs", low, epochs) if low < epochs else epochs,
        }


@dataclass(frozen=True)
class TrialSpec:
    """One trial to run: its number in the study and its ``model:`` settings."""

    number: int
    settings: dict[str, Any]


@dataclass(frozen=True)
class TrialResult:
    """One trial's settings and numbers (``error`` set, numbers NaN, when it failed)."""

    number: int
    settings: dict[str, Any]
    quality: float = math.nan
    privacy_ratio: float = math.nan
    dcr_median: float = math.nan
    dcr_validation_median: float = math.nan
    seconds: float = 0.0
    error: str | None = None

    @property
    def complete(self) -> bool:
        return self.error is None and math.isfinite(self.quality) and not math.isnan(self.privacy_ratio)


@dataclass(frozen=True)
class TuningResult:
    """The chosen trial, why it was chosen, and every trial."""

    chosen: TrialResult
    note: str
    trials: list[TrialResult] = field(default_factory=list)
    pareto: list[int] = field(default_factory=list)  # trial numbers on the Pareto front
    min_privacy_ratio: float = DEFAULT_MIN_PRIVACY_RATIO


@dataclass(frozen=True)
class TuningData:
    """The rows a trial fits on and the rows it is judged on (a split of the training split)."""

    fit: pa.Table
    validation: pa.Table
    schema: Schema


def validation_split(table: pa.Table, schema: Schema, seed: int, fraction: float = VALIDATION_FRACTION) -> TuningData:
    """Split the *training* rows into fit and validation rows, by patient when there is an entity key.

    Raises:
        SynthError: one side is empty (too few rows or patients to tune on).
    """
    fit, validation = split_holdout(table, schema, fraction, seed + VALIDATION_SEED_OFFSET)
    if fit.num_rows == 0 or validation.num_rows == 0:
        raise SynthError(
            f"{table.num_rows} training rows cannot be split into fit and validation rows for tuning "
            f"({fit.num_rows} and {validation.num_rows}); tune on a larger extract"
        )
    return TuningData(fit=fit, validation=validation, schema=schema)


def run_trial(spec: TrialSpec, data: TuningData, config: PipelineConfig) -> TrialResult:
    """Fit with the trial's settings on the fit rows, sample, and score against the validation rows.

    A trial whose settings the model refuses (a :class:`SynthError`) is a failed trial, not
    a failed search; any other exception is a bug and propagates.
    """
    start = time.perf_counter()
    schema = data.schema
    try:
        trial_config = config.with_overrides(model=spec.settings)
        synthesizer = synthesizer_for(trial_config, schema).fit(data.fit, schema)
        rows = min(data.validation.num_rows, config.evaluation.sample_rows)
        synthetic = synthesizer.sample(max(rows, 2), seed=config.seed)
    except SynthError as error:
        return TrialResult(spec.number, spec.settings, seconds=time.perf_counter() - start, error=str(error))
    # Compared as the model saw them: generalised identifiers generalised, types conformed.
    fit, validation = (
        conform(generalised_table(t, schema.direct_identifiers), schema, what)
        for t, what in ((data.fit, "fit"), (data.validation, "validation"))
    )
    synthetic = conform(synthetic, schema, "synthetic")
    quality = quality_scores(validation.to_pandas(), synthetic.to_pandas(), schema)["quality_score"]
    _, (fit_e, validation_e, synthetic_e) = encode(schema, fit, validation, synthetic)
    # One stream for every trial: the validation rows measured are the same, so the ratios compare.
    distances, _ = distance_scores(fit_e, validation_e, synthetic_e, config.evaluation.distance_rows,
                                   np.random.default_rng([config.seed, VALIDATION_SEED_OFFSET]))
    return TrialResult(
        number=spec.number,
        settings=spec.settings,
        quality=float(quality),
        privacy_ratio=privacy_ratio(distances["dcr_median"], distances["dcr_holdout_median"]),
        dcr_median=distances["dcr_median"],
        dcr_validation_median=distances["dcr_holdout_median"],
        seconds=time.perf_counter() - start,
    )


def privacy_ratio(synthetic_median: float, validation_median: float) -> float:
    """Median synthetic DCR over median validation DCR (1 when both are 0: as close as unseen rows)."""
    if validation_median > 0:
        return synthetic_median / validation_median
    return 1.0 if synthetic_median == 0 else math.inf


class Tuner:
    """An Optuna study asked for trials in batches and told their results (the ask/tell interface).

    Args:
        config: the base config; its ``model.epochs`` bounds the epochs a trial may take,
            its ``seed`` seeds the sampler.
        trials: at most this many trials.
        timeout_seconds: no batch is asked after this many seconds (a batch under way finishes).
        space: the settings searched.
    """

    def __init__(self, config: PipelineConfig, trials: int, timeout_seconds: float | None = None,
                 space: SearchSpace | None = None):
        if trials < 1:
            raise SynthError(f"trials must be at least 1, got {trials}")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.config, self.trials, self.timeout_seconds = config, trials, timeout_seconds
        self.space = space or SearchSpace()
        # TPE handles two objectives and is useful from few trials; NSGA-II's first generation
        # alone (50 trials by default) would be random search at the budgets tuning gets.
        sampler = optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=min(10, max(2, trials // 3)))
        self.study = optuna.create_study(directions=["maximize", "maximize"], sampler=sampler)
        self.results: list[TrialResult] = []
        self._asked: dict[int, optuna.Trial] = {}
        self._start = time.monotonic()

    def ask(self, k: int) -> list[TrialSpec]:
        """Up to ``k`` new trials; none once the trial budget or the time is spent."""
        if self.timeout_seconds is not None and time.monotonic() - self._start >= self.timeout_seconds:
            return []
        k = min(k, self.trials - len(self.results) - len(self._asked))
        specs = []
        for _ in range(max(k, 0)):
            trial = self.study.ask()
            self._asked[trial.number] = trial
            specs.append(TrialSpec(trial.number, self.space.suggest(trial, self.config.model.epochs)))
        return specs

    def tell(self, results: list[TrialResult]) -> None:
        """Record finished trials (in trial order, so a seeded study replays the same way)."""
        for result in sorted(results, key=lambda r: r.number):
            trial = self._asked.pop(result.number)
            if result.complete:
                self.study.tell(trial, [result.quality, result.privacy_ratio])
            else:
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            self.results.append(result)

    def result(self, min_privacy_ratio: float = DEFAULT_MIN_PRIVACY_RATIO) -> TuningResult:
        return choose(self.results, min_privacy_ratio)


def tune(data: TuningData, config: PipelineConfig, trials: int = 20, timeout_seconds: float | None = None,
         min_privacy_ratio: float = DEFAULT_MIN_PRIVACY_RATIO, batch: int = 1,
         space: SearchSpace | None = None) -> TuningResult:
    """Search the model's settings within the budget (here, one trial after another)."""
    tuner = Tuner(config, trials, timeout_seconds, space)
    while specs := tuner.ask(batch):
        tuner.tell([run_trial(spec, data, config) for spec in specs])
    return tuner.result(min_privacy_ratio)


def pareto_front(results: list[TrialResult]) -> list[TrialResult]:
    """The complete trials no other trial beats on one objective without losing on the other."""
    done = [r for r in results if r.complete]

    def dominates(a: TrialResult, b: TrialResult) -> bool:
        return (a.quality >= b.quality and a.privacy_ratio >= b.privacy_ratio
                and (a.quality > b.quality or a.privacy_ratio > b.privacy_ratio))

    return [r for r in done if not any(dominates(o, r) for o in done)]


def choose(results: list[TrialResult], min_privacy_ratio: float = DEFAULT_MIN_PRIVACY_RATIO) -> TuningResult:
    """The best quality among Pareto trials with privacy ratio >= ``min_privacy_ratio``, else the most private.

    Raises:
        SynthError: no trial completed.
    """
    front = pareto_front(results)
    if not front:
        errors = sorted({r.error for r in results if r.error})
        raise SynthError(f"none of the {len(results)} tuning trials completed" + (f": {errors[0]}" if errors else ""))
    numbers = sorted(r.number for r in front)
    private = [r for r in front if r.privacy_ratio >= min_privacy_ratio]
    if private:
        chosen = max(private, key=lambda r: (r.quality, r.privacy_ratio, -r.number))
        note = (f"trial {chosen.number}: the best validation quality ({chosen.quality:.3f}) of the {len(private)} "
                f"Pareto trials (of {len(front)}) whose privacy ratio is at least {min_privacy_ratio:g} "
                f"(its ratio {chosen.privacy_ratio:.3f})")
    else:
        chosen = max(front, key=lambda r: (r.privacy_ratio, r.quality, -r.number))
        note = (f"trial {chosen.number}: NO trial reached privacy ratio {min_privacy_ratio:g}; chose the most private "
                f"Pareto trial (ratio {chosen.privacy_ratio:.3f}, quality {chosen.quality:.3f}): its synthetic rows "
                "are closer to the training rows than unseen rows are, so expect the release gate's closeness checks "
                "to fail; try fewer epochs or a smaller network")
    return TuningResult(chosen=chosen, note=note, trials=sorted(results, key=lambda r: r.number), pareto=numbers,
                        min_privacy_ratio=min_privacy_ratio)


def tuned_config(config: PipelineConfig, chosen: TrialResult) -> PipelineConfig:
    """``config`` with the chosen trial's ``model:`` settings."""
    return config.with_overrides(model=chosen.settings)


def write_tuning(result: TuningResult, config: PipelineConfig, output: str | Path, source: str | None = None) -> dict:
    """Write ``tuned.yaml`` (the config to rerun with ``synth run --config``) and ``trials.csv``.

    ``tuned.yaml`` holds the settings of ``config`` that differ from the defaults, with the
    chosen ``model:`` settings, under a comment saying how they were chosen.

    Returns:
        The paths written, by name.
    """
    output = Path(output)
    tuned = tuned_config(config, result.chosen)
    data = tuned.model_dump(mode="json", exclude_defaults=True)
    data["model"] = {**data.get("model", {}), **{k: getattr(tuned.model, k) for k in TUNED}}
    parse_config(data, origin=TUNED_YAML)  # what is written must load
    complete = sum(r.complete for r in result.trials)
    header = [
        f"# Written by `synth tune`{f' on {source}' if source else ''}: {len(result.trials)} trials "
        f"({complete} complete), seed {config.seed}.",
        "# Each trial trained on a split of the training rows and was scored on the rest (validation rows):",
        "# SDMetrics quality against them, and privacy ratio = median DCR(synthetic -> fit rows) /",
        "# median DCR(validation -> fit rows). The holdout was never used.",
        f"# Chosen: {result.note}.",
        f"# Every trial: {TRIALS_CSV} beside this file. Rerun: synth run --source EXTRACT --output DIR --config THIS",
    ]
    text = "\n".join(header) + "\n" + yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
    yaml_path = write_text_atomic(output / TUNED_YAML, text)
    csv_path = write_text_atomic(output / TRIALS_CSV, trials_csv(result))
    return {"tuned_yaml": str(yaml_path), "trials_csv": str(csv_path)}


def trials_csv(result: TuningResult) -> str:
    """One row per trial: its settings, numbers, whether it is on the Pareto front and chosen."""
    import pandas as pd

    rows = []
    for r in result.trials:
        row = asdict(r)
        settings = row.pop("settings")
        rows.append({
            "trial": row.pop("number"),
            **{k: (" ".join(map(str, v)) if isinstance(v, list) else v) for k, v in settings.items()},
            **row,
            "pareto": r.number in result.pareto,
            "chosen": r.number == result.chosen.number,
        })
    return pd.DataFrame(rows).to_csv(index=False)
