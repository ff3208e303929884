"""Patient-level checks: rows per patient, static attributes, date order, constraints.

Definitions (all on the full data; identifiers compared only as grouping keys):

* ``entities``: distinct entity keys, real and synthetic.
* ``rows_per_entity_ks``: 1 - the two-sample Kolmogorov-Smirnov statistic between the
  real and synthetic distributions of rows per entity (1.0 = identical); the mean rows per
  entity, real and synthetic. No real maximum is published: it is one patient's count.
* ``static_consistency``: share of synthetic entities whose *static* columns - those
  constant within every real entity - hold one value across all their rows.
* ``date_order``: for each pair of date columns where the second is on or after the
  first in at least 99% of real rows, the share of rows breaking that order, real and
  synthetic; compared at the later column's resolution (an appointment *day* is not
  before a booking made that morning).
* ``constraint_violations``: rows breaking each declared constraint, real and
  synthetic, with the synthetic total.

Reference for KS: Massey, "The Kolmogorov-Smirnov test for goodness of fit", JASA 1951.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from synth.config import ColumnKind, Constraint
from synth.constraints import inequality_violations, count_violations, describe
from synth.schema import Schema

ORDER_SHARE = 0.99


def entity_metrics(real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, constraints: list[Constraint]) -> dict:
    """The patient-level metrics; ``None`` values where the schema has no entity key."""
    metrics: dict = {"constraint_violations": constraint_report(real, synthetic, constraints)}
    key = schema.entity_key
    if key is None:
        return metrics | {"entities": None, "rows_per_entity_ks": None, "static_consistency": None, "date_order": {}}
    real_sizes = real.groupby(key, sort=False).size().to_numpy()
    synthetic_sizes = synthetic.groupby(key, sort=False).size().to_numpy()
    static = static_columns(real, schema)
    return metrics | {
        "entities": {"real": int(len(real_sizes)), "synthetic": int(len(synthetic_sizes))},
        "rows_per_entity_ks": float(1 - ks_2samp(real_sizes, synthetic_sizes).statistic),
        "rows_per_entity": {
            "real_mean": float(real_sizes.mean()),
            "synthetic_mean": float(synthetic_sizes.mean()),
            "synthetic_max": int(synthetic_sizes.max()),
        },
        "static_columns": static,
        "static_consistency": consistency(synthetic, key, static),
        "date_order": date_order(real, synthetic, schema),
    }


def static_columns(frame: pd.DataFrame, schema: Schema) -> list[str]:
    """Modelled columns holding one value (null counts as a value) within every entity."""
    key = frame[schema.entity_key]
    found = []
    for spec in schema.modelled:
        labels = pd.Series(pd.factorize(frame[spec.name], use_na_sentinel=False)[0])
        if (labels.groupby(key.to_numpy()).nunique() <= 1).all():
            found.append(spec.name)
    return found


def consistency(frame: pd.DataFrame, key: str, columns: list[str]) -> float:
    """Share of entities whose ``columns`` are constant across their rows."""
    if not columns or frame.empty:
        return 1.0
    keys = frame[key].to_numpy()
    constant = np.ones(len(pd.unique(keys)), dtype=bool)
    codes = pd.factorize(keys)[0]
    for name in columns:
        labels = pd.Series(pd.factorize(frame[name], use_na_sentinel=False)[0])
        constant &= (labels.groupby(codes).nunique() <= 1).to_numpy()
    return float(constant.mean())


def date_order(real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema) -> dict:
    """Violation rates of the date orders that (almost) always hold in the real data."""
    dates = [c.name for c in schema.of_kind(ColumnKind.DATETIME)]
    result = {}
    for first in dates:
        for second in dates:
            if first == second:
                continue
            real_rate = _break_rate(real[first], real[second])
            if real_rate is None or real_rate > 1 - ORDER_SHARE:
                continue
            result[f"{first} <= {second}"] = {"real": real_rate, "synthetic": _break_rate(synthetic[first], synthetic[second])}
    return result


def constraint_report(real: pd.DataFrame, synthetic: pd.DataFrame, constraints: list[Constraint]) -> dict:
    by_constraint = count_violations(synthetic, constraints)
    return {
        "total": int(sum(by_constraint.values())),
        "synthetic": by_constraint,
        "real": count_violations(real, constraints),
        "rules": [describe(c) for c in constraints],
    }


def _break_rate(low: pd.Series, high: pd.Series) -> float | None:
    present = (low.notna() & high.notna()).to_numpy()
    if not present.any():
        return None
    return float(inequality_violations(low, high, strict=False)[present].mean())
