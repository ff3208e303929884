"""The release gate: which checks must pass before synthetic data may leave staging.

Checks and thresholds (``gate:`` in the config, :class:`synth.config.GateOptions`):

* exact copies: ``exact_collisions <= max_exact_copies`` (default 0), on the full data;
* closeness: ``dcr_median >= dcr_holdout_median * (1 - dcr_tolerance)`` - synthetic rows
  may not sit closer to the training rows, at the median, than real rows the generator
  never saw (default tolerance 0.1, i.e. up to 10 % closer is sampling noise);
* membership inference: ``mia_auc <= max_mia_auc`` (default 0.6);
* quality: ``quality_score >= min_quality`` (default 0.7);
* direct identifiers: no real value of a name, id, postcode, date of birth ... column in
  the synthetic data (:mod:`synth.evaluation.identifiers`).

A check whose number could not be computed fails: the gate releases only what it has
shown to be safe. Every failing check says by how much it missed. ``enforce: false``
keeps the verdict and its reasons but releases anyway: for data that is public already
(the bundled demo), never for a real extract.
"""

from __future__ import annotations

import math

from synth.config import GateOptions
from synth.evaluation.identifiers import identifier_check


def gate_verdict(metrics: dict, options: GateOptions | None = None) -> dict:
    """``{"verdict": "pass" | "fail", "reasons": [...], "checks": [...]}`` for ``metrics``."""
    options = options or GateOptions()
    baseline = metrics.get("dcr_holdout_median")
    closest = _number(baseline) * (1 - options.dcr_tolerance) if _known(baseline) else None
    checks = [
        _at_most(
            "exact_copies", "exact copies of real rows", metrics.get("exact_collisions"), options.max_exact_copies
        ),
        _at_least(
            "closeness",
            "median distance to the closest real record",
            metrics.get("dcr_median"),
            closest,
            f"holdout baseline {_fmt(baseline)} x (1 - {options.dcr_tolerance:g})",
        ),
        _at_most("membership_inference", "membership-inference AUC", metrics.get("mia_auc"), options.max_mia_auc),
        _at_least("quality", "quality score", metrics.get("quality_score"), options.min_quality, "the floor"),
        identifier_check(metrics),
    ]
    failed = [c for c in checks if not c["passed"]]
    return {
        "verdict": "fail" if failed else "pass",
        "enforced": options.enforce,
        "reasons": [c["message"] for c in failed],
        "checks": checks,
    }


def releases(gate: dict) -> bool:
    """Whether a verdict lets the data out: it passed, or the config does not enforce it."""
    return gate["verdict"] == "pass" or not gate.get("enforced", True)


def _at_most(name: str, label: str, value, limit) -> dict:
    if not _known(value):
        return _unknown(name, label, limit)
    passed = _number(value) <= limit
    message = f"{label} {_fmt(value)} is within the limit {_fmt(limit)}" if passed else (
        f"{label} {_fmt(value)} exceeds the limit {_fmt(limit)} by {_fmt(_number(value) - limit)}"
    )
    return {"name": name, "passed": passed, "value": value, "threshold": limit, "message": message}


def _at_least(name: str, label: str, value, floor, floor_label: str) -> dict:
    if not _known(value) or floor is None:
        return _unknown(name, label, floor)
    passed = _number(value) >= floor
    message = f"{label} {_fmt(value)} is at or above {floor_label} = {_fmt(floor)}" if passed else (
        f"{label} {_fmt(value)} is below {floor_label} = {_fmt(floor)} by {_fmt(floor - _number(value))}"
    )
    return {"name": name, "passed": passed, "value": value, "threshold": floor, "message": message}


def _unknown(name: str, label: str, threshold) -> dict:
    return {
        "name": name,
        "passed": False,
        "value": None,
        "threshold": threshold,
        "message": f"{label} could not be computed, so it cannot be shown to be safe",
    }


def _known(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _number(value) -> float:
    return float(value)


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{float(value):.4g}"
