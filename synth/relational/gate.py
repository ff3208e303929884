"""The release gate of a relational extract: the structure holds, each table is faithful, privacy is shown.

Checks (each ``{name, passed, value, threshold, message}`` as in :mod:`synth.evaluation.gate`):

* ``orphans``: no synthetic foreign key without its synthetic parent;
* ``date_orders``: no synthetic row breaks a cross-table date order that holds in the real rows;
* ``cardinality``: children per parent, KS complement at least :data:`MIN_CARDINALITY` for every relation;
* ``quality``: each table's SDMetrics quality at least ``gate.min_quality``;
* ``privacy``: the flat gate's privacy checks (holdout, exact copies, closeness and its
  tail, membership inference; :mod:`synth.evaluation.gate`, its thresholds and messages)
  on every table, each table's synthetic rows against its training rows and the rows of
  patients held out of training (:mod:`synth.relational.privacy`). It passes only when
  every check of every table passes; its message names each table and check that failed,
  with the flat check's numbers. Too few patients held out (fewer than
  :data:`~synth.relational.privacy.MIN_HOLDOUT_PATIENTS`), or no privacy numbers at all,
  is *unknown* and fails: the data cannot be shown to be safe.
"""

from __future__ import annotations

from synth.config import GateOptions
from synth.evaluation.gate import UNKNOWN, verdict_of

#: Least KS complement of the children-per-parent distributions (the issue's bar).
MIN_CARDINALITY = 0.9


def relational_verdict(metrics: dict, options: GateOptions) -> dict:
    """The verdict for :func:`~synth.relational.evaluation.evaluate_relational`'s ``metrics``, shaped as
    :func:`synth.evaluation.gate.gate_verdict`'s (``verdict``, ``enforced``, ``summary``, ``reasons``, ``checks``)."""
    orphans = sum(metrics["orphans"].values())
    broken = sum(metrics["date_orders"].values())
    weakest = min(metrics["cardinality"].items(), key=lambda kv: kv[1], default=(None, 1.0))
    quality = {name: q["quality_score"] for name, q in metrics["quality"].items()}
    poorest = min(quality.items(), key=lambda kv: kv[1])
    checks = [
        _check("orphans", orphans == 0, orphans, 0, f"{orphans:,} synthetic rows have no synthetic parent"),
        _check("date_orders", broken == 0, broken, 0, f"{broken:,} synthetic rows break a date order across tables"),
        _check("cardinality", weakest[1] >= MIN_CARDINALITY, weakest[1], MIN_CARDINALITY,
               f"children per parent of {weakest[0]}: KS complement {weakest[1]:.3f} is below {MIN_CARDINALITY}"),
        _check("quality", poorest[1] >= options.min_quality, poorest[1], options.min_quality,
               f"quality of table {poorest[0]!r} {poorest[1]:.3f} is below the floor {options.min_quality}"),
        _privacy(metrics.get("privacy")),
    ]
    return verdict_of(checks, options, lambda c: f"{c['name']}: {c['message']}")


def _privacy(privacy: dict | None) -> dict:
    """Every table's privacy checks passed; else which table and check did not, with the flat check's message."""
    if not privacy:
        return _check("privacy", False, None, None, f"{UNKNOWN}: no privacy numbers were computed")
    if privacy.get("unknown"):
        return _check("privacy", False, None, None, f"{UNKNOWN}: {privacy['unknown']}")
    checks = [(table, c) for table, found in privacy["tables"].items() for c in found["checks"]]
    failed = [f"table {table!r}: {c['name']}: {c['message']}" for table, c in checks if not c["passed"]]
    if not checks:
        return _check("privacy", False, None, None, f"{UNKNOWN}: no table was checked")
    return _check("privacy", not failed, len(failed), 0, "; ".join(failed))


def _check(name: str, passed: bool, value, threshold, message: str) -> dict:
    return {"name": name, "passed": bool(passed), "value": value, "threshold": threshold,
            "message": "passed" if passed else message}
