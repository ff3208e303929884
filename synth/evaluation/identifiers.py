"""Direct identifiers: no real value of an identifier column may appear in the synthetic data.

For every direct identifier the schema holds (detected or declared, :mod:`synth.pii`),
comparing values normalised as :func:`synth.pii.values.normalised` does (case, spacing,
an NHS number's or a phone number's digits):

* a faked column (and a dropped one the synthetic table holds anyway, as synthetic data
  made elsewhere may): the number of distinct real values, over the training and holdout
  rows, that some synthetic value equals;
* a generalised column: the synthetic values that are not generalised (a date of birth
  off the first of its month or year, a full postcode), plus the real values held at full
  precision that some synthetic value equals.

``direct_identifier_copies`` adds them up over the columns; the gate's
``direct_identifiers`` check passes only at 0 (:func:`identifier_check`). A column whose
real values are not at hand cannot be shown to hold none, so the total is then unknown
and the check fails. The metrics name columns and count values; they never quote one.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synth.pii.categories import PiiHandling
from synth.pii.values import generalise, normalised, not_generalised
from synth.schema import Schema

CHECK = "direct_identifiers"


def direct_identifier_scores(real: list[pa.Table], synthetic: pa.Table, schema: Schema) -> dict:
    """``direct_identifiers`` (one entry per column) and their total ``direct_identifier_copies``.

    Args:
        real: every real table at hand (training rows, holdout rows), as read: a column
            may be absent from some.
        synthetic: the synthetic table, as read (before it is conformed to the schema,
            so a column the schema dropped is still seen).
        schema: the direct identifiers and their handling.
    """
    check = IdentifierCheck(real, schema, synthetic.column_names)
    check.add(synthetic)
    return check.result()


class IdentifierCheck:
    """:func:`direct_identifier_scores` over a synthetic table streamed batch by batch.

    Memory holds each column's distinct real values (normalised) and one flag per value, never
    the synthetic column: each batch marks the real values it holds.

    Args:
        real: the real tables at hand, as read.
        schema: the direct identifiers and their handling.
        synthetic_columns: the synthetic table's columns, as read.
    """

    def __init__(self, real: list[pa.Table], schema: Schema, synthetic_columns: list[str]):
        self.entries: list[dict] = []
        self._keys: dict[str, pa.Array] = {}  # column -> distinct real keys, nulls dropped
        self._hits: dict[str, np.ndarray] = {}
        self._rules = {}
        for rule in schema.direct_identifiers:
            entry = {k: v for k, v in rule.to_dict().items() if k != "note"}
            entry["in_synthetic"] = rule.column in synthetic_columns
            self.entries.append(entry)
            if not entry["in_synthetic"]:
                entry["real_values_in_synthetic"] = 0
                continue
            reals = [t[rule.column] for t in real if rule.column in t.column_names]
            if rule.handling == PiiHandling.GENERALISE.value:
                entry["not_generalised"] = 0
                # A real value already on the grid (born on the 1st) is its own generalisation, not a copy.
                reals = [pc.filter(r, pc.fill_null(pc.not_equal(generalise(r, rule.category, rule.level), r), False))
                         for r in reals]
            if not reals:
                entry["real_values_in_synthetic"] = None
                continue
            keys = pc.drop_null(pc.unique(pa.chunked_array([_key(r, rule.category) for r in reals]).combine_chunks()))
            self._keys[rule.column], self._hits[rule.column] = keys, np.zeros(len(keys), dtype=bool)
            self._rules[rule.column] = rule

    def add(self, synthetic: pa.Table) -> None:
        """Count one batch of synthetic rows (as read)."""
        for column, rule in self._rules.items():
            fake = synthetic[column]
            entry = next(e for e in self.entries if e["column"] == column)
            if rule.handling == PiiHandling.GENERALISE.value:
                entry["not_generalised"] += not_generalised(fake, rule.category, rule.level)
            self._hits[column] |= _present(self._keys[column], pc.unique(_key(fake, rule.category)))

    def result(self) -> dict:
        for entry in self.entries:
            if entry["column"] in self._hits:
                entry["real_values_in_synthetic"] = int(self._hits[entry["column"]].sum())
        counts = [(c["real_values_in_synthetic"], c.get("not_generalised", 0)) for c in self.entries]
        total = None if any(copies is None for copies, _ in counts) else sum(a + b for a, b in counts)
        return {"direct_identifiers": self.entries, "direct_identifier_copies": total}


def shared_values(real: list[pa.ChunkedArray | pa.Array], synthetic: pa.ChunkedArray | pa.Array, category: str) -> int:
    """How many distinct real values (normalised) some synthetic value equals."""
    real_keys = pc.drop_null(pc.unique(pa.chunked_array([_key(r, category) for r in real]).combine_chunks()))
    return int(_present(real_keys, pc.unique(_key(synthetic, category))).sum())


def _present(real_keys: pa.Array, synthetic_keys: pa.Array) -> np.ndarray:
    """For each real key, whether some synthetic key equals it."""
    if real_keys.type != synthetic_keys.type:  # e.g. dates read as text from a CSV made elsewhere
        real_keys, synthetic_keys = pc.cast(real_keys, pa.string()), pc.cast(synthetic_keys, pa.string())
    hits = pc.is_in(real_keys, value_set=pc.drop_null(synthetic_keys))
    return hits.to_numpy(zero_copy_only=False).astype(bool)


def _key(values: pa.ChunkedArray | pa.Array, category: str) -> pa.Array:
    keys = normalised(values, category)
    return pc.cast(keys, pa.timestamp("us")) if pa.types.is_temporal(keys.type) else keys


def identifier_check(metrics: dict) -> dict:
    """The gate check: no real value of a direct identifier column in the synthetic data."""
    value = metrics.get("direct_identifier_copies")
    columns = metrics.get("direct_identifiers") or []
    check = {"name": CHECK, "passed": value == 0, "value": value, "threshold": 0}
    if value is None:
        return check | {
            "message": "real values of direct identifier columns could not all be compared with the synthetic "
            "data, so none can be shown to appear"
        }
    if value == 0:
        names = ", ".join(c["column"] for c in columns)
        found = f"of the {len(columns)} direct identifier columns ({names}) " if columns else "(none found) "
        return check | {"message": f"no real value {found}appears in the synthetic data"}
    parts = []
    for c in columns:
        copies, coarse = c.get("real_values_in_synthetic") or 0, c.get("not_generalised") or 0
        if copies:
            parts.append(f"{c['column']}: {copies} real value{'s' if copies > 1 else ''}")
        if coarse:
            parts.append(f"{c['column']}: {coarse} value{'s' if coarse > 1 else ''} finer than its {c['level']}")
    return check | {
        "message": f"real values of direct identifier columns appear in the synthetic data ({'; '.join(parts)}); "
        "fake, generalise or drop those columns (columns.<name>.pii)"
    }
