"""The release gate: which checks must pass before synthetic data may leave staging.

Checks, in order (thresholds under ``gate:`` in the config, :class:`synth.config.GateOptions`;
z is ``sampling_sigmas``, default 3):

* holdout: the baselines below need real rows the generator never saw. Without a given
  holdout (a split of the real table stood in) the check says "unknown: no unseen real
  rows" and fails, and so do closeness, closeness tail and membership inference, whose
  numbers then compare the generator with rows it may have seen. A given holdout fails
  when it repeats real rows beyond sampling noise of the real table's own duplication
  (share of real rows equal to another real row, every column compared, identifiers too);
  shared patients are refused earlier, as an input error.
* exact copies: ``k_t``, the synthetic rows equal to a training row (on the full data),
  may exceed ``s * k_h`` by z standard errors, where ``k_h`` is the synthetic rows equal
  to a holdout row and ``s = max(n_training / n_holdout, 1)``: a generator that learnt the
  population rather than the training rows matches the training rows at most ``s`` times
  as often as the holdout's (the match chance is concave in the size of the set matched;
  :func:`synth.evaluation.collisions.copies_against_holdout`). Coarse tables, where
  different people share every value, match both sets often and pass; a table where no
  synthetic row equals a holdout row allows ``z sqrt(s + s^2)`` copies (13 at an 80/20
  split) whatever the synthetic size, since both counts run over every synthetic row.
  The variance is Poisson's, ``s k_h + s^2 k_h`` with ``k_h`` floored at 1
  (:func:`copy_allowance`).
* closeness: ``dcr_median >= dcr_holdout_median * (1 - dcr_tolerance)`` - synthetic rows
  may not sit closer to the training rows, at the median, than real rows the generator
  never saw (default tolerance 0.1).
* closeness tail: the share of synthetic rows at most as far from a training row as the
  holdout's ``dcr_quantile`` (default 5th percentile) distance may exceed the holdout's
  own share there by z standard errors, sqrt(q (1 - q) (1/n_synthetic + 1/n_holdout)):
  the threshold's own noise (a quantile of n_holdout rows has F(t) with variance
  q (1 - q) / n_holdout) plus the synthetic share's. Near-copies of a fifth of the
  training rows lift the share by about a fifth; at the default 10,000 rows a side the
  allowance is 0.9 percentage points.
* membership inference: ``mia_auc <= max_mia_auc`` (default 0.6), the largest two-sided
  AUC of the row- and (with an entity key) patient-level attacks.
* quality: ``quality_score >= min_quality`` (default 0.7).
* direct identifiers: no real value of a name, id, postcode, date of birth ... column in
  the synthetic data (:mod:`synth.evaluation.identifiers`).

Why z = 3: each comparison is a difference of two sampled shares, roughly normal at the
sizes used (thousands of rows a side); 3 standard errors fail a generator no worse than
fresh real data about once in 740 runs per check (one-sided 0.135%), while a 1% excess
over 10,000 rows a side is already beyond it.

A check whose number could not be computed fails: the gate releases only what it has
shown to be safe. Every check says its numbers and, failing, by how much it missed.
Overrides are explicit: ``enforce: false`` or a threshold looser than its default needs
``gate.reason`` (a config error otherwise), and the verdict's ``summary`` reads
"PASS (relaxed: ...)" or "NOT ENFORCED: <reason> ..."; ``enforce: false`` keeps the
verdict but releases anyway, for data that is public already (the bundled demo).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from synth.config import GateOptions
from synth.evaluation.identifiers import identifier_check
from synth.evaluation.membership import two_sided

UNKNOWN = "unknown: no unseen real rows"


def gate_verdict(metrics: dict, options: GateOptions | None = None) -> dict:
    """The verdict for ``metrics``: ``verdict`` ("pass" | "fail"), ``summary``, ``reasons`` and ``checks``."""
    options = options or GateOptions()
    holdout = _holdout(metrics, options)
    unseen = holdout["passed"]
    checks = [
        holdout,
        _exact_copies(metrics, options, holdout),
        _needs_unseen(unseen, _closeness(metrics, options)),
        _needs_unseen(unseen, _closeness_tail(metrics, options)),
        _needs_unseen(unseen, _membership(metrics, options)),
        _at_least("quality", "quality score", metrics.get("quality_score"), options.min_quality, "the floor"),
        identifier_check(metrics),
    ]
    return verdict_of(checks, options, _reason)


def verdict_of(checks: list[dict], options: GateOptions, describe: Callable[[dict], str]) -> dict:
    """The verdict of ``checks`` under ``options``; ``describe`` words a failed check as a reason."""
    failed = [c for c in checks if not c["passed"]]
    verdict = "fail" if failed else "pass"
    return {
        "verdict": verdict,
        "enforced": options.enforce,
        "summary": verdict_summary(verdict, options),
        "reason": options.reason,
        "relaxed": options.relaxed(),
        "sampling_sigmas": options.sampling_sigmas,
        "reasons": [describe(c) for c in failed],
        "checks": checks,
    }


def _reason(check: dict) -> str:
    # Measured misses already name what they measured; an unknown says only why it is unknown.
    return f"{check['name']}: {check['message']}" if check["message"].startswith(UNKNOWN) else check["message"]


def releases(gate: dict) -> bool:
    """Whether a verdict lets the data out: it passed, or the config does not enforce it."""
    return gate["verdict"] == "pass" or not gate.get("enforced", True)


def allowance(share: float, n_compared: int, n_reference: int, sigmas: float) -> float:
    """z standard errors of the difference of two binomial shares, the reference's ``share`` the rate.

    The rate is floored at one reference row (1 / ``n_reference``): a reference that shows
    none of n rows cannot tell a rate of 0 from one of about 1 / n (it shows none a third
    of the time at that rate), and an allowance of exactly 0 would fail a faithful
    generator whenever it happened to show one.
    """
    if n_compared <= 0 or n_reference <= 0:
        return float("nan")
    rate = max(share, 1 / n_reference)
    return sigmas * math.sqrt(rate * (1 - rate) * (1 / n_compared + 1 / n_reference))


def verdict_summary(verdict: str, options: GateOptions) -> str:
    """The verdict in one line: PASS, FAIL, relaxed (with the reason) or NOT ENFORCED (with the reason)."""
    relaxed = options.relaxed()
    if not options.enforce:
        extra = f"; relaxed: {', '.join(relaxed)}" if relaxed else ""
        return f"NOT ENFORCED: {options.reason} (verdict {verdict.upper()}{extra})"
    if relaxed:
        return f"{verdict.upper()} (relaxed: {', '.join(relaxed)}; reason: {options.reason})"
    return verdict.upper()


def _holdout(metrics: dict, options: GateOptions) -> dict:
    found = metrics.get("holdout") or {}
    name, label = "holdout", "holdout rows repeating a real row"
    if not found.get("given"):
        return _check(name, False, None, None, f"{UNKNOWN}: no holdout was given, so a split of the real table "
                      "stood in and the generator may have seen it; give real rows it never saw (--holdout)")
    share, duplicates = found.get("holdout_match_rate"), found.get("real_duplicate_rate")
    if not (_known(share) and _known(duplicates)):
        return _unknown(name, label, None)
    limit = duplicates + allowance(duplicates, found["holdout_rows"], found["real_rows"], options.sampling_sigmas)
    measured = (f"{_pct(share)} of holdout rows equal a real row on every column, against the real table's own "
                f"duplication {_pct(duplicates)} + {options.sampling_sigmas:g} standard errors = {_pct(limit)}")
    if share <= limit:
        return _check(name, True, share, limit, f"given: {measured}")
    return _check(name, False, share, limit, f"{UNKNOWN}: the holdout is not unseen: {measured}; "
                  "it holds rows of the real table")


def copy_allowance(holdout_matches: int, scale: float, sigmas: float) -> float:
    """The most synthetic rows that may equal a training row: ``s k_h + z sqrt((s + s^2) max(k_h, 1))``.

    ``k_t - s k_h`` has mean at most 0 for a generator that never saw the training rows and,
    with both counts roughly Poisson, variance ``s k_h + s^2 k_h``; ``k_h`` is floored at one
    match so a table with none still allows for the one a faithful generator may show.
    """
    return scale * holdout_matches + sigmas * math.sqrt((scale + scale * scale) * max(holdout_matches, 1))


def _exact_copies(metrics: dict, options: GateOptions, holdout: dict) -> dict:
    name, label = "exact_copies", "synthetic rows equal to a training row"
    keys = ("training_collisions", "synthetic_holdout_collisions", "copy_scale", "training_holdout_rate")
    copies, unseen, scale, natural = (metrics.get(k) for k in keys)
    n_synthetic, n_training = metrics.get("rows") or 0, metrics.get("real_rows") or 0
    if not all(_known(v) for v in (copies, unseen, scale, natural)) or not n_synthetic or not n_training:
        return _unknown(name, label, None)
    if (metrics.get("holdout") or {}).get("given") and not holdout["passed"]:
        return _check(name, False, copies, None, f"{UNKNOWN}: the holdout is no baseline for copies")
    # Unseen people first: synthetic rows may equal holdout rows only as often as training rows do.
    unseen_limit = natural + allowance(natural, n_synthetic, n_training, options.sampling_sigmas)
    if unseen / n_synthetic > unseen_limit:
        return _check(name, False, copies, None, (
            f"{_count(unseen)} of {n_synthetic:,} synthetic rows ({_pct(unseen / n_synthetic)}) equal a holdout row, "
            f"against the training rows' own {_pct(natural)} + {options.sampling_sigmas:g} standard errors = "
            f"{_pct(unseen_limit)}: the synthetic rows copy real records, the holdout's included"))
    limit = copy_allowance(unseen, scale, options.sampling_sigmas)
    measured = (f"{label}: {_count(copies)} of {n_synthetic:,}, against {_count(unseen)} equal to a holdout row "
                f"x {scale:.3g} (training/holdout size) + {options.sampling_sigmas:g} standard errors = limit "
                f"{limit:,.1f}")
    return _within(name, copies, limit, measured, f"{copies - limit:,.1f} (copies)")


def _within(name: str, value, limit, measured: str, excess: str) -> dict:
    """A check that passes when ``value <= limit``; ``excess`` says by how much it did not."""
    if value <= limit:
        return _check(name, True, value, limit, f"{measured}: within it")
    return _check(name, False, value, limit, f"{measured}: exceeds it by {excess}")


def _closeness(metrics: dict, options: GateOptions) -> dict:
    baseline = metrics.get("dcr_holdout_median")
    floor = _number(baseline) * (1 - options.dcr_tolerance) if _known(baseline) else None
    return _at_least("closeness", "median distance to the closest real record", metrics.get("dcr_median"), floor,
                     f"holdout baseline {_fmt(baseline)} x (1 - {options.dcr_tolerance:g})")


def _closeness_tail(metrics: dict, options: GateOptions) -> dict:
    name, label = "closeness_tail", "share of synthetic rows in the holdout's closest tail"
    distance = metrics.get("distance") or {}
    share, baseline = distance.get("dcr_tail_share"), distance.get("dcr_holdout_tail_share")
    n_synthetic, n_holdout = distance.get("synthetic_rows") or 0, distance.get("holdout_rows") or 0
    if not (_known(share) and _known(baseline)) or not n_synthetic or not n_holdout:
        return _unknown(name, label, None)
    limit = baseline + allowance(baseline, n_synthetic, n_holdout, options.sampling_sigmas)
    quantile = distance.get("tail_quantile", options.dcr_quantile)
    measured = (f"{_pct(share)} of synthetic rows are at most as far from a training row as the holdout's "
                f"{quantile:.0%} quantile distance, against the holdout's own {_pct(baseline)} + "
                f"{options.sampling_sigmas:g} standard errors = limit {_pct(limit)}")
    return _within(name, share, limit, measured, f"{_pct(share - limit)} (near-copies)")


def _membership(metrics: dict, options: GateOptions) -> dict:
    attacks = metrics.get("membership_inference") or {}
    aucs = {k: v for k, v in attacks.items() if k.endswith("_auc") and _known(v)}
    strongest = max(aucs, key=lambda k: two_sided(aucs[k])) if aucs else None
    label = "membership-inference AUC" + (f" ({strongest.removesuffix('_auc').replace('_', ' ')} attack)"
                                          if strongest else "")
    return _at_most("membership_inference", label, metrics.get("mia_auc"), options.max_mia_auc)


def _needs_unseen(unseen: bool, check: dict) -> dict:
    """``check``, or an unknown that fails when the holdout is not real rows the generator never saw."""
    if unseen:
        return check
    measured = f" (measured {_fmt(check['value'])}, against rows the generator may have seen)" if _known(
        check["value"]) else ""
    return _check(check["name"], False, check["value"], check["threshold"], f"{UNKNOWN}{measured}")


def _at_most(name: str, label: str, value, limit) -> dict:
    if not _known(value):
        return _unknown(name, label, limit)
    passed = _number(value) <= limit
    message = f"{label} {_fmt(value)} is within the limit {_fmt(limit)}" if passed else (
        f"{label} {_fmt(value)} exceeds the limit {_fmt(limit)} by {_fmt(_number(value) - limit)}"
    )
    return _check(name, passed, value, limit, message)


def _at_least(name: str, label: str, value, floor, floor_label: str) -> dict:
    if not _known(value) or floor is None:
        return _unknown(name, label, floor)
    passed = _number(value) >= floor
    message = f"{label} {_fmt(value)} is at or above {floor_label} = {_fmt(floor)}" if passed else (
        f"{label} {_fmt(value)} is below {floor_label} = {_fmt(floor)} by {_fmt(floor - _number(value))}"
    )
    return _check(name, passed, value, floor, message)


def _unknown(name: str, label: str, threshold) -> dict:
    return _check(name, False, None, threshold, f"{label} could not be computed, so it cannot be shown to be safe")


def _check(name: str, passed: bool, value, threshold, message: str) -> dict:
    return {"name": name, "passed": passed, "value": value, "threshold": threshold, "message": message}


def _known(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _number(value) -> float:
    return float(value)


def _count(value) -> str:
    return f"{value:,}" if isinstance(value, int) else _fmt(value)


def _pct(share: float) -> str:
    return f"{100 * share:.3g}%"


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{float(value):.4g}"
