"""Evaluation of a synthetic relational extract: per table, per relation, across tables.

* **quality per table**: the project's single-table quality
  (:func:`synth.evaluation.quality.quality_scores`, SDMetrics' QualityReport) on each table;
* **cardinality**: for each relation, SDMetrics' ``KSComplement`` (1 - the two-sample
  Kolmogorov-Smirnov statistic) between real and synthetic numbers of children per parent
  row, parents without children counted as 0;
* **inter-table pair trends**: for each relation, each numerical parent column against
  an aggregate of the children (their count, and the mean of each numerical child
  column), scored by SDMetrics' ``CorrelationSimilarity`` (1 - |Pearson real - Pearson
  synthetic| / 2); parents without children are left out of the means;
* **orphans**: synthetic foreign key values with no synthetic parent (must be 0);
* **broken date orders across tables**: for every child date and parent date whose order
  holds in at least ``threshold`` of the real child rows, the synthetic rows that break it
  (must be 0), counted at the child date's resolution as the model stores it.

Reference: SDMetrics documentation (DataCebo): KSComplement, CorrelationSimilarity,
"Cardinality" and "Intertable Trends" in the multi-table quality report.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sdmetrics.column_pairs import CorrelationSimilarity
from sdmetrics.single_column import KSComplement

from synth.config import ColumnKind
from synth.constraints import resolution_ns
from synth.entity import date_steps
from synth.evaluation.quality import quality_scores
from synth.frames import to_model_frame
from synth.relational.integrity import check_integrity
from synth.relational.schema import Relation, RelationalSchema
from synth.schema import ColumnSpec, Schema

#: Fewest parents with children for a pair trend to be scored (a correlation of a handful is noise).
MIN_PAIRS = 10


def evaluate_relational(
    real: dict[str, pa.Table],
    synthetic: dict[str, pa.Table],
    schema: RelationalSchema,
    table_schemas: dict[str, Schema],
    threshold: float = 0.99,
) -> dict:
    """Every check of the module docstring.

    Args:
        real, synthetic: one Arrow table per table of ``schema``.
        schema: the tree.
        table_schemas: each table's column kinds (e.g. ``model.tables_[name].schema``).
        threshold: share of real rows a date order must hold in to be checked.

    Returns:
        ``{"quality": {table: scores}, "cardinality": {relation: KS complement},
        "pair_trends": {relation: {"parent ~ aggregate": score}}, "orphans": {relation: n},
        "date_orders": {"a <= b": broken synthetic rows}}``.
    """
    quality = {}
    for name in schema.order:
        spec = table_schemas[name]
        quality[name] = quality_scores(to_model_frame(real[name], spec), to_model_frame(synthetic[name], spec), spec)
    cardinality, trends, orders = {}, {}, {}
    for relation in schema.relations:
        real_counts = children_per_parent(real, relation)
        synthetic_counts = children_per_parent(synthetic, relation)
        cardinality[str(relation)] = float(KSComplement.compute(pd.Series(real_counts), pd.Series(synthetic_counts)))
        trends[str(relation)] = pair_trends(real, synthetic, relation, table_schemas)
        orders |= broken_date_orders(real, synthetic, relation, threshold)
    return {
        "quality": quality,
        "cardinality": cardinality,
        "pair_trends": trends,
        "orphans": check_integrity(synthetic, schema).orphans(),
        "date_orders": orders,
    }


def children_per_parent(tables: dict[str, pa.Table], relation: Relation) -> np.ndarray:
    """(parent rows,) the number of child rows under each parent row (orphans ignored)."""
    parent_of = parent_index(tables, relation)
    return np.bincount(parent_of[parent_of >= 0], minlength=tables[relation.parent].num_rows)


def pair_trends(
    real: dict[str, pa.Table], synthetic: dict[str, pa.Table], relation: Relation, table_schemas: dict[str, Schema]
) -> dict[str, float]:
    """Correlation similarity of each numerical parent column with the children's count and means."""
    parent_columns = [c.name for c in table_schemas[relation.parent].of_kind(ColumnKind.NUMERICAL)]
    child_columns = [c.name for c in table_schemas[relation.child].of_kind(ColumnKind.NUMERICAL)]
    real_frame = _aggregated(real, relation, parent_columns, child_columns)
    synthetic_frame = _aggregated(synthetic, relation, parent_columns, child_columns)
    scores = {}
    for column in parent_columns:
        for aggregate in ["count"] + [f"mean({c})" for c in child_columns]:
            pair = [column, aggregate]
            a, b = real_frame[pair].dropna(), synthetic_frame[pair].dropna()
            if min(len(a), len(b)) < MIN_PAIRS or a.nunique().min() < 2 or b.nunique().min() < 2:
                continue  # no correlation to compare
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scores[f"{relation.parent}.{column} ~ {aggregate}"] = float(CorrelationSimilarity.compute(a, b))
    return scores


def broken_date_orders(
    real: dict[str, pa.Table], synthetic: dict[str, pa.Table], relation: Relation, threshold: float
) -> dict[str, int]:
    """Synthetic child rows breaking each parent/child date order that holds in the real rows.

    Keys read ``"earlier <= later"`` with table-qualified columns.
    """
    out = {}
    real_pairs, synthetic_pairs = _date_pairs(real, relation), _date_pairs(synthetic, relation)
    for (child, parent), (c, p) in real_pairs.items():
        if not (c.notna() & p.notna()).any():
            continue
        unit = resolution_ns(c)
        synthetic_child, synthetic_parent = synthetic_pairs[(child, parent)]
        # date_steps: child - parent in whole child units (NaN where either is missing)
        real_steps, synthetic_steps = date_steps(c, p, unit), date_steps(synthetic_child, synthetic_parent, unit)
        compared = ~np.isnan(real_steps)
        child_name, parent_name = f"{relation.child}.{child}", f"{relation.parent}.{parent}"
        if np.mean(real_steps[compared] >= 0) >= threshold:
            out[f"{parent_name} <= {child_name}"] = int(np.sum(synthetic_steps < 0))
        if np.mean(real_steps[compared] <= 0) >= threshold:
            out[f"{child_name} <= {parent_name}"] = int(np.sum(synthetic_steps > 0))
    return out


# -- helpers ------------------------------------------------------------------------------------
def parent_index(tables: dict[str, pa.Table], relation: Relation) -> np.ndarray:
    """(child rows,) each child row's parent row (-1 where none)."""
    keys = tables[relation.parent][relation.key].combine_chunks()
    index = pc.index_in(tables[relation.child][relation.column], value_set=keys)
    return pc.fill_null(index, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _aggregated(tables, relation: Relation, parent_columns: list[str], child_columns: list[str]) -> pd.DataFrame:
    """One row per parent: its numerical columns, its children's count and their means."""
    parent_of = parent_index(tables, relation)
    n = tables[relation.parent].num_rows
    # Unsafe casts: a DP model's integers can pass 2**53 (noisy domain bounds); rounded, not refused.
    frame = pd.DataFrame({c: _floats(tables[relation.parent][c]) for c in parent_columns})
    kept = parent_of >= 0
    frame["count"] = np.bincount(parent_of[kept], minlength=n).astype(float)
    for column in child_columns:
        values = _floats(tables[relation.child][column])
        means = pd.Series(values[kept]).groupby(parent_of[kept]).mean()
        frame[f"mean({column})"] = means.reindex(range(n)).to_numpy()
    return frame


def _floats(column) -> np.ndarray:
    return pc.cast(column, pa.float64(), safe=False).to_numpy(zero_copy_only=False)


def _date_pairs(tables, relation: Relation) -> dict[tuple[str, str], tuple[pd.Series, pd.Series]]:
    """(child date, parent date) -> (the child's values, its parent's values), one entry per child row."""
    parent_of = parent_index(tables, relation)
    kept = parent_of >= 0
    child, parent = tables[relation.child], tables[relation.parent]
    pairs = {}
    for c in _dates(child):
        for p in _dates(parent):
            cv = pd.Series(_ns(child[c])[kept])
            pv = pd.Series(_ns(parent[p])[parent_of[kept]])
            pairs[(c, p)] = (cv, pv)
    return pairs


def _dates(table: pa.Table) -> list[str]:
    return [f.name for f in table.schema if pa.types.is_timestamp(f.type) or pa.types.is_date(f.type)]


def _ns(column: pa.ChunkedArray) -> np.ndarray:
    """A date column as naive UTC ``datetime64[ns]``, as the model saw it."""
    spec = Schema(columns=(ColumnSpec("d", ColumnKind.DATETIME, str(column.type)),))
    return to_model_frame(pa.table({"d": column}), spec)["d"].to_numpy()
