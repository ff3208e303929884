"""Tests for synth.evaluation.gate and the gate/evaluation settings in the config."""

from __future__ import annotations

import math

import pytest

from synth.config import GateOptions, parse_config
from synth.errors import ConfigError
from synth.evaluation.gate import allowance, copy_allowance, gate_verdict

HOLDOUT = {"given": True, "holdout_match_rate": 0.0, "real_duplicate_rate": 0.0, "holdout_rows": 2_000,
           "real_rows": 8_000}
DISTANCE = {"synthetic_rows": 10_000, "holdout_rows": 10_000, "tail_quantile": 0.05, "dcr_tail_share": 0.05,
            "dcr_holdout_tail_share": 0.05}
SAFE = {
    "rows": 10_000, "holdout_rows": 2_000, "holdout": HOLDOUT, "exact_collisions": 0, "exact_collision_rate": 0.0,
    "holdout_exact_collision_rate": 0.0, "training_collisions": 0, "synthetic_holdout_collisions": 0,
    "training_holdout_rate": 0.0, "copy_scale": 4.0, "real_rows": 8_000, "dcr_median": 0.10,
    "dcr_holdout_median": 0.10, "distance": DISTANCE, "mia_auc": 0.52,
    "membership_inference": {"distance_auc": 0.52, "density_auc": 0.49}, "quality_score": 0.85,
    "direct_identifier_copies": 0,
}
NAMES = ["holdout", "exact_copies", "closeness", "closeness_tail", "membership_inference", "quality",
         "direct_identifiers"]


def test_safe_metrics_pass():
    verdict = gate_verdict(SAFE)
    assert verdict["verdict"] == "pass" and verdict["reasons"] == [] and verdict["summary"] == "PASS"
    assert [c["name"] for c in verdict["checks"]] == NAMES


def test_each_failure_says_which_check_and_by_how_much():
    metrics = SAFE | {"training_collisions": 3, "dcr_median": 0.05,
                      "distance": DISTANCE | {"dcr_tail_share": 0.24}, "mia_auc": 0.71, "quality_score": 0.62}
    verdict = gate_verdict(metrics)
    assert verdict["verdict"] == "fail" and verdict["summary"] == "FAIL"
    reasons = verdict["reasons"]
    # No synthetic row equals a holdout row: 4 x 0 + 3 * sqrt((4 + 16) * 1) = 13.4 copies at most.
    metrics |= {"training_collisions": 30}
    reasons = gate_verdict(metrics)["reasons"]
    assert reasons[0] == ("synthetic rows equal to a training row: 30 of 10,000, against 0 equal to a holdout row x 4 "
                          "(training/holdout size) + 3 standard errors = limit 13.4: exceeds it by 16.6 (copies)")
    assert "0.05 is below holdout baseline 0.1 x (1 - 0.1) = 0.09 by 0.04" in reasons[1]
    # 0.05 + 3 * sqrt(0.05 * 0.95 * (1/10000 + 1/10000)) = 0.05925
    assert reasons[2].startswith("24% of synthetic rows are at most as far from a training row as the holdout's 5% "
                                 "quantile distance, against the holdout's own 5% + 3 standard errors = limit 5.92%")
    assert reasons[3] == "membership-inference AUC (distance attack) 0.71 exceeds the limit 0.6 by 0.11"
    assert reasons[4] == "quality score 0.62 is below the floor = 0.7 by 0.08"


def test_tail_allowance_is_the_standard_error_of_two_shares():
    assert allowance(0.05, 10_000, 10_000, 3) == pytest.approx(3 * math.sqrt(0.05 * 0.95 * 2e-4))
    # A reference showing none of its 10,000 rows is taken for a rate of one row in 10,000.
    assert allowance(0.0, 10_000, 10_000, 3) == pytest.approx(3 * math.sqrt(1e-4 * (1 - 1e-4) * 2e-4))
    check = gate_verdict(SAFE | {"distance": DISTANCE | {"dcr_tail_share": 0.0592}})["checks"][3]
    assert check["passed"] and check["threshold"] == pytest.approx(0.05 + 3 * math.sqrt(0.05 * 0.95 * 2e-4))
    assert not gate_verdict(SAFE | {"distance": DISTANCE | {"dcr_tail_share": 0.0593}})["checks"][3]["passed"]


def test_exact_copies_are_judged_against_matches_with_the_holdout_scaled_to_the_training_size():
    # A coarse table: 120 synthetic rows equal a holdout row; 4x as many training rows may match 4x as often.
    coarse = SAFE | {"synthetic_holdout_collisions": 120, "training_holdout_rate": 0.012}
    limit = 4 * 120 + 3 * math.sqrt(20 * 120)
    assert copy_allowance(120, 4.0, 3) == pytest.approx(limit)
    check = gate_verdict(coarse | {"training_collisions": 600})["checks"][1]
    assert check["passed"] and check["threshold"] == pytest.approx(limit)
    assert not gate_verdict(coarse | {"training_collisions": 630})["checks"][1]["passed"]
    # A fine-grained table where no synthetic row equals a holdout row: a handful of copies at most,
    # however many synthetic rows there are.
    assert copy_allowance(0, 4.0, 3) == pytest.approx(3 * math.sqrt(20))
    assert gate_verdict(SAFE | {"rows": 1_000_000, "training_collisions": 13})["checks"][1]["passed"]
    assert not gate_verdict(SAFE | {"rows": 1_000_000, "training_collisions": 14})["checks"][1]["passed"]
    # A training set smaller than the holdout is scaled by 1, never below.
    assert copy_allowance(5, 1.0, 3) == pytest.approx(5 + 3 * math.sqrt(2 * 5))


def test_synthetic_rows_matching_unseen_people_too_often_fail_whatever_the_training_matches():
    # Real rows (the holdout's among them) passed off as synthetic: they match training and
    # holdout alike, so the scaled comparison alone would not see them.
    copied = SAFE | {"training_collisions": 8_000, "synthetic_holdout_collisions": 2_000}
    check = gate_verdict(copied)["checks"][1]
    assert not check["passed"]
    assert check["message"].startswith("2,000 of 10,000 synthetic rows (20%) equal a holdout row, against the "
                                       "training rows' own 0% + 3 standard errors")


def test_closeness_tolerance_is_relative_to_the_holdout_baseline():
    just_inside = SAFE | {"dcr_median": 0.0901}
    assert gate_verdict(just_inside)["verdict"] == "pass"
    assert gate_verdict(just_inside, GateOptions(dcr_tolerance=0.0))["verdict"] == "fail"


def test_a_check_that_could_not_be_computed_fails():
    verdict = gate_verdict(SAFE | {"mia_auc": math.nan})
    assert verdict["verdict"] == "fail"
    assert "could not be computed" in verdict["reasons"][0]


def test_without_unseen_rows_the_privacy_checks_are_unknown_and_fail():
    verdict = gate_verdict(SAFE | {"holdout": {"given": False}})
    assert verdict["verdict"] == "fail"
    failed = {c["name"]: c["message"] for c in verdict["checks"] if not c["passed"]}
    assert set(failed) == {"holdout", "closeness", "closeness_tail", "membership_inference"}
    assert all(message.startswith("unknown: no unseen real rows") for message in failed.values())
    assert "measured 0.52" in failed["membership_inference"]  # the number is shown, not trusted


def test_a_holdout_that_repeats_real_rows_is_not_unseen():
    # The real table repeats 1% of its rows; a holdout cut from it repeats 30%.
    cut = SAFE | {"holdout": HOLDOUT | {"real_duplicate_rate": 0.01, "holdout_match_rate": 0.30}}
    verdict = gate_verdict(cut)
    failed = {c["name"] for c in verdict["checks"] if not c["passed"]}
    assert failed == {"holdout", "exact_copies", "closeness", "closeness_tail", "membership_inference"}
    fresh = SAFE | {"holdout": HOLDOUT | {"real_duplicate_rate": 0.01, "holdout_match_rate": 0.012}}
    assert gate_verdict(fresh)["verdict"] == "pass"


def test_a_gate_not_enforced_keeps_its_verdict_and_says_why():
    failing = SAFE | {"mia_auc": 0.9}
    assert gate_verdict(failing)["enforced"] is True
    options = parse_config({"gate": {"enforce": False, "reason": "public demo data"}}).gate
    relaxed = gate_verdict(failing, options)
    assert relaxed["verdict"] == "fail" and relaxed["enforced"] is False
    assert relaxed["summary"] == "NOT ENFORCED: public demo data (verdict FAIL)"
    assert relaxed["reason"] == "public demo data"
    assert relaxed["reasons"] == ["membership-inference AUC (distance attack) 0.9 exceeds the limit 0.6 by 0.3"]


def test_overrides_need_a_reason():
    with pytest.raises(ConfigError, match="gate: enforce false relaxes the release gate: add gate.reason"):
        parse_config({"gate": {"enforce": False}})
    for looser in ({"max_mia_auc": 0.7}, {"min_quality": 0.5}, {"dcr_tolerance": 0.2}, {"dcr_quantile": 0.1},
                   {"sampling_sigmas": 4}):
        with pytest.raises(ConfigError, match=f"{next(iter(looser))} .* relaxes the release gate"):
            parse_config({"gate": looser})
    with pytest.raises(ConfigError, match="reason is empty"):
        parse_config({"gate": {"enforce": False, "reason": "  "}})
    stricter = parse_config({"gate": {"max_mia_auc": 0.55, "min_quality": 0.8, "dcr_quantile": 0.01}}).gate
    assert stricter.relaxed() == [] and gate_verdict(SAFE, stricter)["summary"] == "PASS"


def test_a_relaxed_threshold_is_named_in_the_verdict():
    options = parse_config({"gate": {"max_mia_auc": 0.75, "reason": "small cohort, reviewed by the DPO"}}).gate
    verdict = gate_verdict(SAFE | {"mia_auc": 0.7}, options)
    assert verdict["verdict"] == "pass"
    assert verdict["summary"] == "PASS (relaxed: max_mia_auc 0.75 (default 0.6); reason: small cohort, reviewed by the DPO)"
    assert verdict["relaxed"] == ["max_mia_auc 0.75 (default 0.6)"]


def test_thresholds_come_from_the_config():
    with pytest.raises(ConfigError, match="gate.max_mia_auc"):
        parse_config({"gate": {"max_mia_auc": 0.4}})
    with pytest.raises(ConfigError, match="gate.typo: unknown setting"):
        parse_config({"gate": {"typo": 1}})
    with pytest.raises(ConfigError, match="gate.max_exact_copies: unknown setting"):
        parse_config({"gate": {"max_exact_copies": 5}})  # copies are judged against the holdout's rate now


def test_evaluation_settings_in_the_config():
    config = parse_config({"evaluation": {"target": "Outcome", "sensitive": ["BMI"], "protected": ["Age"]}})
    assert config.evaluation.target == "Outcome" and config.evaluation.distance_rows == 10_000
    assert config.gate.sampling_sigmas == 3 and config.gate.dcr_quantile == 0.05 and config.gate.min_quality == 0.7


def test_the_demo_config_states_why_its_gate_is_not_enforced():
    from synth.config import load_config
    from synth.demo.mimic import DEMO_CONFIG

    gate = load_config(DEMO_CONFIG).gate
    assert gate.enforce is False and "public" in gate.reason
