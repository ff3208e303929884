"""Tests for synth.evaluation.gate and the gate/evaluation settings in the config."""

from __future__ import annotations

import math

import pytest

from synth.config import GateOptions, parse_config
from synth.errors import ConfigError
from synth.evaluation.gate import gate_verdict

SAFE = {"exact_collisions": 0, "dcr_median": 0.10, "dcr_holdout_median": 0.10, "mia_auc": 0.52, "quality_score": 0.85,
        "direct_identifier_copies": 0}


def test_safe_metrics_pass():
    verdict = gate_verdict(SAFE)
    assert verdict["verdict"] == "pass" and verdict["reasons"] == []
    assert [c["name"] for c in verdict["checks"]] == ["exact_copies", "closeness", "membership_inference", "quality",
                                                          "direct_identifiers"]


def test_each_failure_says_which_check_and_by_how_much():
    metrics = SAFE | {"exact_collisions": 3, "dcr_median": 0.05, "mia_auc": 0.71, "quality_score": 0.62}
    verdict = gate_verdict(metrics)
    assert verdict["verdict"] == "fail"
    reasons = verdict["reasons"]
    assert reasons[0] == "exact copies of real rows 3 exceeds the limit 0 by 3"
    assert "0.05 is below holdout baseline 0.1 x (1 - 0.1) = 0.09 by 0.04" in reasons[1]
    assert reasons[2] == "membership-inference AUC 0.71 exceeds the limit 0.6 by 0.11"
    assert reasons[3] == "quality score 0.62 is below the floor = 0.7 by 0.08"


def test_closeness_tolerance_is_relative_to_the_holdout_baseline():
    just_inside = SAFE | {"dcr_median": 0.0901}
    assert gate_verdict(just_inside)["verdict"] == "pass"
    assert gate_verdict(just_inside, GateOptions(dcr_tolerance=0.0))["verdict"] == "fail"


def test_a_check_that_could_not_be_computed_fails():
    verdict = gate_verdict(SAFE | {"mia_auc": math.nan})
    assert verdict["verdict"] == "fail"
    assert "could not be computed" in verdict["reasons"][0]


def test_a_gate_not_enforced_keeps_its_verdict_and_says_so():
    failing = SAFE | {"mia_auc": 0.9}
    assert gate_verdict(failing)["enforced"] is True
    relaxed = gate_verdict(failing, parse_config({"gate": {"enforce": False}}).gate)
    assert relaxed["verdict"] == "fail" and relaxed["enforced"] is False
    assert relaxed["reasons"] == ["membership-inference AUC 0.9 exceeds the limit 0.6 by 0.3"]


def test_thresholds_come_from_the_config():
    config = parse_config({"gate": {"max_exact_copies": 5, "max_mia_auc": 0.75, "min_quality": 0.5}})
    assert gate_verdict(SAFE | {"exact_collisions": 5, "mia_auc": 0.7}, config.gate)["verdict"] == "pass"
    with pytest.raises(ConfigError, match="gate.max_mia_auc"):
        parse_config({"gate": {"max_mia_auc": 0.4}})
    with pytest.raises(ConfigError, match="gate.typo: unknown setting"):
        parse_config({"gate": {"typo": 1}})


def test_evaluation_settings_in_the_config():
    config = parse_config({"evaluation": {"target": "Outcome", "sensitive": ["BMI"], "protected": ["Age"]}})
    assert config.evaluation.target == "Outcome" and config.evaluation.distance_rows == 10_000
    assert config.gate.max_exact_copies == 0 and config.gate.min_quality == 0.7
