"""Tuning: a seeded Optuna study on a validation split of the training rows, a privacy floor on the choice,
a tuned.yaml that reruns, and the tune flow end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
import yaml

from synth.config import load_config, parse_config
from synth.errors import SynthError
from synth.holdout import split_holdout
from synth.io.sources import read_table
from synth.schema import infer_schema
from synth import tuning
from synth.tuning import (
    TRIALS_CSV,
    TUNED_YAML,
    SearchSpace,
    TrialResult,
    TrialSpec,
    Tuner,
    choose,
    privacy_ratio,
    run_trial,
    validation_split,
    write_tuning,
)
from tests.conftest import SMALL_EVALUATION

#: Tiny networks and two epochs at most: the tests are about the search, not the model.
TINY = SearchSpace(latent_dims=(2, 4), widths=(8, 16), depths=(1, 2), batch_sizes=(64, 128),
                   learning_rate=(1e-3, 1e-2), weight_decay=(1e-6, 1e-4), min_epochs_share=0.5)
CONFIG = {"seed": 3, "model": {"epochs": 2, "patience": 1}, **yaml.safe_load(SMALL_EVALUATION)}


@pytest.fixture(scope="module")
def heart(heart_csv):
    config = parse_config(CONFIG)
    table = read_table(heart_csv, config).select(["site", "age", "sex", "cp", "chol", "thalach", "ca", "num"])
    schema = infer_schema(table, config)
    training, _ = split_holdout(table, schema, config.evaluation.holdout_fraction, config.seed)
    return config, validation_split(training, schema, config.seed)


def _result(number, quality, ratio, latent_dim=4, error=None):
    settings = {"latent_dim": latent_dim, "hidden_dims": [16, 16], "batch_size": 64, "learning_rate": 0.002,
                "weight_decay": 1e-5, "epochs": 2}
    if error:
        return TrialResult(number, settings, error=error)
    return TrialResult(number, settings, quality=quality, privacy_ratio=ratio, dcr_median=0.1 * ratio,
                       dcr_validation_median=0.1, seconds=1.0)


#: Trial 0 has the best quality but sits close to its training rows; 3 is dominated by 1; 4 failed.
TRIALS = [_result(0, 0.90, 0.50, latent_dim=2), _result(1, 0.80, 0.95, latent_dim=8),
          _result(2, 0.70, 1.10, latent_dim=16), _result(3, 0.60, 0.92), _result(4, 0, 0, error="diverged")]


def test_the_validation_split_is_disjoint_from_the_holdout_and_the_fit_rows():
    rng = np.random.default_rng(0)
    patients = np.repeat(np.arange(400), rng.integers(1, 5, size=400))
    table = pa.table({"patient_id": [f"P{p:04d}" for p in patients], "age": rng.normal(60, 10, len(patients)),
                      "ward": rng.choice(["A", "B", "C"], len(patients))})
    config = parse_config({"entity_key": "patient_id", "columns": {"patient_id": "identifier"}})
    schema = infer_schema(table, config)
    training, holdout = split_holdout(table, schema, 0.2, seed=0)
    data = validation_split(training, schema, seed=0)

    def ids(t):
        return set(t["patient_id"].to_pylist())

    assert not ids(data.validation) & ids(holdout)
    assert not ids(data.validation) & ids(data.fit)
    assert data.fit.num_rows + data.validation.num_rows == training.num_rows
    assert 0.12 < len(ids(data.validation)) / len(ids(training)) < 0.28  # about 20% of the training patients


def test_too_few_rows_to_split_is_a_clear_error(heart):
    config, data = heart
    with pytest.raises(SynthError, match="cannot be split into fit and validation rows"):
        validation_split(data.fit.slice(0, 1), data.schema, config.seed)


def _known_answer(spec, data, config):
    """A trial's numbers as a known function of its settings (no training)."""
    s = spec.settings
    return TrialResult(spec.number, s, quality=s["learning_rate"] * 50 + s["latent_dim"] / 10,
                       privacy_ratio=16 / s["hidden_dims"][0])


def test_a_seeded_study_asks_for_the_same_trials_twice(monkeypatch):
    monkeypatch.setattr(tuning, "run_trial", _known_answer)
    config = parse_config(CONFIG)
    first, second = (tuning.tune(None, config, trials=8, batch=2, space=TINY) for _ in range(2))
    settings = [r.settings for r in first.trials]
    assert len(settings) == 8 and settings == [r.settings for r in second.trials]
    assert first.chosen.number == second.chosen.number
    assert len({json.dumps(s, sort_keys=True) for s in settings}) > 4  # it searches, it does not repeat one point
    for s in settings:
        assert s["latent_dim"] in TINY.latent_dims and s["epochs"] in (1, 2)
        assert set(s["hidden_dims"]) <= set(TINY.widths) and 1e-3 <= s["learning_rate"] <= 1e-2
    other = tuning.tune(None, config.with_overrides(seed=4), trials=8, batch=2, space=TINY)
    assert [r.settings for r in other.trials] != settings  # another seed, other settings


def test_a_trial_is_seeded_and_scored_on_the_validation_rows(heart):
    config, data = heart
    spec = TrialSpec(0, {"latent_dim": 4, "hidden_dims": [16], "batch_size": 64, "learning_rate": 5e-3,
                         "weight_decay": 1e-5, "epochs": 2})
    first, second = run_trial(spec, data, config), run_trial(spec, data, config)
    assert first.complete and (first.quality, first.privacy_ratio) == (second.quality, second.privacy_ratio)
    assert 0.3 < first.quality < 1
    assert first.privacy_ratio == pytest.approx(first.dcr_median / first.dcr_validation_median)
    assert first.dcr_validation_median > 0 and first.dcr_median > 0


def test_the_budget_stops_the_study():
    config = parse_config(CONFIG)
    tuner = Tuner(config, trials=3, space=TINY)
    assert len(tuner.ask(2)) == 2 and len(tuner.ask(2)) == 1 and tuner.ask(2) == []
    assert Tuner(config, trials=50, timeout_seconds=1e-9, space=TINY).ask(2) == []


def test_the_chosen_trial_respects_the_privacy_threshold():
    result = choose(TRIALS, min_privacy_ratio=0.9)
    assert result.chosen.number == 1  # not 0: its synthetic rows are twice as close to the training rows
    assert result.pareto == [0, 1, 2]
    assert result.note.startswith("trial 1: the best validation quality (0.800) of the 2 Pareto trials (of 3) whose "
                                  "privacy ratio is at least 0.9")
    assert choose(TRIALS, min_privacy_ratio=0.4).chosen.number == 0
    strict = choose(TRIALS, min_privacy_ratio=1.5)
    assert strict.chosen.number == 2 and "NO trial reached privacy ratio 1.5" in strict.note
    with pytest.raises(SynthError, match="none of the 1 tuning trials completed: diverged"):
        choose([TRIALS[4]])


def test_privacy_ratio_of_tied_rows():
    assert privacy_ratio(0.05, 0.1) == 0.5
    assert privacy_ratio(0.0, 0.0) == 1.0 and math.isinf(privacy_ratio(0.1, 0.0))


def test_tuned_yaml_loads_and_holds_the_chosen_settings(tmp_path):
    config = parse_config({"seed": 5, "columns": {"site": "categorical"}, "model": {"epochs": 7, "name": "vae"},
                           "gate": {"enforce": False, "reason": "public data"}})
    result = choose(TRIALS, min_privacy_ratio=0.9)
    written = write_tuning(result, config, tmp_path, source="heart.csv")
    tuned = load_config(written["tuned_yaml"])
    assert tuned.model.latent_dim == 8 and tuned.model.hidden_dims == [16, 16]
    assert (tuned.model.learning_rate, tuned.model.epochs, tuned.model.name) == (0.002, 2, "vae")
    assert tuned.seed == 5 and tuned.columns["site"].kind.value == "categorical" and tuned.gate.enforce is False
    text = (tmp_path / TUNED_YAML).read_text()
    assert text.startswith("# Written by `synth tune` on heart.csv: 5 trials (4 complete), seed 5.")
    assert "# Chosen: trial 1:" in text
    rows = list(pacsv.read_csv(tmp_path / TRIALS_CSV).to_pylist())
    assert [r["trial"] for r in rows] == [0, 1, 2, 3, 4]
    assert [r["chosen"] for r in rows] == [False, True, False, False, False]
    assert [r["pareto"] for r in rows] == [True, True, True, False, False]
    assert rows[1]["hidden_dims"] == "16 16" and rows[4]["error"] == "diverged"


def test_a_bad_flag_is_one_line_before_any_flow_starts(tmp_path, heart_csv):
    from tests.test_cli import synth

    done = synth("tune", "--source", str(heart_csv), "--output", str(tmp_path / "out"), "--trials", "0",
                 tmp_path=tmp_path, timeout=120)
    assert done.returncode == 1 and "--trials 0: Input should be greater than or equal to 1" in done.stderr
    assert "Traceback" not in done.stderr
    from flows.parameters import TuneParameters  # kept light: it repeats the library's default

    assert TuneParameters.model_fields["min_privacy_ratio"].default == tuning.DEFAULT_MIN_PRIVACY_RATIO


@pytest.mark.e2e
def test_the_tune_flow_writes_a_config_that_synth_run_accepts(tmp_path, heart_csv):
    from typer.testing import CliRunner

    from flows.cli import app
    from flows.tune import tune as tune_flow
    from flows.parameters import TuneParameters

    extract = tmp_path / "heart.csv"
    pacsv.write_csv(pacsv.read_csv(heart_csv).select(["site", "age", "sex", "cp", "chol", "thalach", "num"]), extract)
    config = tmp_path / "config.yaml"
    config.write_text(
        "seed: 1\nmodel: {epochs: 2, patience: 1}\npreprocess: {workers: 1}\n"
        "gate: {enforce: false, reason: a public teaching data set}\n" + SMALL_EVALUATION
    )
    out = tmp_path / "tuned"
    result = tune_flow(TuneParameters(source=str(extract), output=str(out), config_path=str(config), trials=2,
                                      workers=2, work_dir=str(tmp_path / "work")))
    assert result["trials"] == 2
    tuned = load_config(out / TUNED_YAML)
    assert tuned.model.latent_dim == result["chosen"]["latent_dim"] and tuned.model.epochs <= 2
    assert len(pacsv.read_csv(out / TRIALS_CSV)) == 2
    assert not list((tmp_path / "work").iterdir())  # the work folder of real-data intermediates is gone

    # The command itself, in this process (one Prefect API for both runs).
    run = CliRunner().invoke(app, ["run", "--source", str(extract), "--output", str(tmp_path / "run"),
                                   "--config", str(out / TUNED_YAML)])
    assert run.exit_code == 0, run.output
    saved = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert saved["model"]["latent_dim"] == tuned.model.latent_dim
    assert saved["model"]["hidden_dims"] == tuned.model.hidden_dims
