"""Patient-level checks: rows per patient, static attributes, date order, constraints.

Definitions (all on the full data; identifiers compared only as grouping keys; the
synthetic table is streamed, :class:`SyntheticEntities`):

* ``entities``: distinct entity keys, real and synthetic (rows without a key are left out).
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

import pandas as pd
import polars as pl
import pyarrow as pa
from scipy.stats import ks_2samp

from synth.config import ColumnKind, Constraint, InequalityConstraint
from synth.constraints import UNITS_NS, count_violations, describe, inequality_violations, resolution_ns
from synth.schema import Schema

ORDER_SHARE = 0.99


def entity_metrics(real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, constraints: list[Constraint]) -> dict:
    """The patient-level metrics; ``None`` values where the schema has no entity key."""
    stream = SyntheticEntities(real, schema, constraints)
    stream.add(pa.Table.from_pandas(synthetic, preserve_index=False))
    return stream.result()


class SyntheticEntities:
    """:func:`entity_metrics` with the synthetic table streamed batch by batch.

    The real side is a frame (a bounded sample). Of the synthetic rows only counts are kept,
    and per patient a summary: a 64-bit hash of the key, its rows, and whether its static
    columns held one value (with a hash of that value, to compare across batches). Memory
    follows the number of synthetic patients (about 24 bytes each), not rows x columns.

    Args:
        real: the real rows.
        schema: the entity key and the column kinds.
        constraints: the declared constraints, counted on both sides.

    Dates are compared at the resolution of each synthetic datetime column over *all* its
    rows (:func:`synth.constraints.resolution_ns`; a batch alone may look coarser): call
    :meth:`measure_units` with the synthetic table before the first :meth:`add`.
    """

    def __init__(self, real: pd.DataFrame, schema: Schema, constraints: list[Constraint]):
        self.schema, self.constraints, self.units = schema, constraints, {}
        self.key = schema.entity_key
        self._real = real
        self._violations = dict.fromkeys((describe(c) for c in constraints), 0)
        self._summaries: list[pl.DataFrame] = []
        self.pairs: dict[tuple[str, str], float] = {}
        if self.key is None:
            return
        self.static = static_columns(real, schema)
        self.pairs = real_date_orders(real, schema)
        self._breaks = {pair: [0, 0] for pair in self.pairs}  # (broken, compared) synthetic rows

    def measure_units(self, scan) -> None:
        """Find the resolution of the synthetic datetime columns that constraints or date orders compare.

        Args:
            scan: the synthetic :class:`synth.io.scan.TableScan` (its datetime columns are read once).
        """
        wanted = {c.high for c in self.constraints if isinstance(c, InequalityConstraint)}
        wanted |= {second for _, second in self.pairs}
        wanted = sorted(w for w in wanted if w in scan.column_names and self.schema[w].kind is ColumnKind.DATETIME)
        self.units = dict.fromkeys(wanted, UNITS_NS[0])
        for batch in scan.batches(wanted) if wanted else ():
            frame = batch.to_pandas()
            for name in wanted:
                self.units[name] = min(self.units[name], resolution_ns(frame[name]))

    def add(self, batch: pa.Table) -> None:
        """Count one batch of synthetic rows (conformed to the schema)."""
        frame = batch.to_pandas() if self.constraints or self.pairs else None
        for name, count in count_violations(frame, self.constraints, self.units).items() if self.constraints else ():
            self._violations[name] += count
        if self.key is None:
            return
        for first, second in self.pairs:
            present = (frame[first].notna() & frame[second].notna()).to_numpy()
            broken = inequality_violations(frame[first], frame[second], strict=False, unit=self.units.get(second))
            self._breaks[first, second][0] += int((broken & present).sum())
            self._breaks[first, second][1] += int(present.sum())
        columns = [self.key, *self.static]
        rows = pl.from_arrow(pa.table({c: _plain(batch[c]) for c in columns})).filter(pl.col(self.key).is_not_null())
        value = pl.struct(self.static).hash(seed=_HASH_SEED) if self.static else pl.lit(0, pl.UInt64)
        self._summaries.append(
            rows.group_by(pl.col(self.key).hash(seed=_HASH_SEED).alias("patient"))
            .agg(rows=pl.len(), constant=value.n_unique() == 1, value=value.first())
        )
        if len(self._summaries) >= _COMPACT_EVERY:
            self._summaries = [_merge(self._summaries)]

    def result(self) -> dict:
        metrics: dict = {"constraint_violations": {
            "total": int(sum(self._violations.values())),
            "synthetic": self._violations,
            "real": count_violations(self._real, self.constraints),
            "rules": [describe(c) for c in self.constraints],
        }}
        if self.key is None:
            return metrics | {"entities": None, "rows_per_entity_ks": None, "static_consistency": None,
                              "date_order": {}}
        real_sizes = self._real.groupby(self.key, sort=False).size().to_numpy()
        patients = _merge(self._summaries) if self._summaries else _EMPTY
        synthetic_sizes = patients["rows"].to_numpy()
        consistent = patients["constant"].to_numpy()
        return metrics | {
            "entities": {"real": int(len(real_sizes)), "synthetic": int(len(synthetic_sizes))},
            "rows_per_entity_ks": float(1 - ks_2samp(real_sizes, synthetic_sizes).statistic),
            "rows_per_entity": {
                "real_mean": float(real_sizes.mean()),
                "synthetic_mean": float(synthetic_sizes.mean()),
                "synthetic_max": int(synthetic_sizes.max()),
            },
            "static_columns": self.static,
            "static_consistency": float(consistent.mean()) if self.static and len(consistent) else 1.0,
            "date_order": {
                f"{first} <= {second}": {"real": self.pairs[first, second],
                                         "synthetic": broken / compared if compared else None}
                for (first, second), (broken, compared) in self._breaks.items()
            },
        }


_HASH_SEED = 0x5EED
_COMPACT_EVERY = 16
_EMPTY = pl.DataFrame(schema={"patient": pl.UInt64, "rows": pl.UInt32, "constant": pl.Boolean, "value": pl.UInt64})


def _merge(summaries: list[pl.DataFrame]) -> pl.DataFrame:
    """One summary per patient from per-batch summaries (a patient's rows may span batches)."""
    return pl.concat(summaries).group_by("patient").agg(
        rows=pl.col("rows").sum(), constant=pl.col("constant").all() & (pl.col("value").n_unique() == 1),
        value=pl.col("value").first(),
    )


def _plain(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Dictionary columns as their values: codes differ from batch to batch, values do not."""
    return column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column


def static_columns(frame: pd.DataFrame, schema: Schema) -> list[str]:
    """Modelled columns holding one value (null counts as a value) within every entity."""
    key = frame[schema.entity_key]
    found = []
    for spec in schema.modelled:
        labels = pd.Series(pd.factorize(frame[spec.name], use_na_sentinel=False)[0])
        if (labels.groupby(key.to_numpy()).nunique() <= 1).all():
            found.append(spec.name)
    return found


def real_date_orders(real: pd.DataFrame, schema: Schema) -> dict[tuple[str, str], float]:
    """The date pairs whose order (almost) always holds in the real data, with the real violation rate."""
    dates = [c.name for c in schema.of_kind(ColumnKind.DATETIME)]
    pairs = {}
    for first in dates:
        for second in dates:
            if first == second:
                continue
            real_rate = _break_rate(real[first], real[second])
            if real_rate is None or real_rate > 1 - ORDER_SHARE:
                continue
            pairs[first, second] = real_rate
    return pairs


def _break_rate(low: pd.Series, high: pd.Series) -> float | None:
    present = (low.notna() & high.notna()).to_numpy()
    if not present.any():
        return None
    return float(inequality_violations(low, high, strict=False)[present].mean())
