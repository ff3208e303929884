"""Quality: SDMetrics' quality methodology (column shapes and column-pair trends).

Definition: *Column Shapes* averages, over columns, SDMetrics' ``KSComplement`` (1 - KS
statistic: numbers, dates) or ``TVComplement`` (1 - total variation distance: categories);
*Column Pair Trends* averages, over the column pairs with a real association worth keeping,
1 - |correlation difference| / 2 (numeric pairs) or contingency similarity (others), see
:mod:`synth.evaluation.pair_trends` (why the report's own pair property is not used). The
quality score is the mean of the two. 1.0 is a perfect match.
Reference: SDMetrics documentation, "Quality Report" (DataCebo).

Identifier columns are left out: synthetic ids are fresh by design.
"""

from __future__ import annotations

import math
import warnings

import pandas as pd
from sdmetrics.errors import IncomputableMetricError
from sdmetrics.single_column import KSComplement, TVComplement

from synth.config import ColumnKind
from synth.evaluation.pair_trends import as_number, pair_trend_details, pair_trends_score
from synth.schema import Schema

TABLE = "table"


def generate_report(report, real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema):
    """An SDMetrics single-table ``report`` generated on the non-identifier columns, quietly."""
    columns = [c.name for c in schema.columns if c.kind is not ColumnKind.IDENTIFIER]
    all_columns = schema.sdmetrics_metadata()["columns"]
    metadata = {"tables": {TABLE: {"columns": {k: v for k, v in all_columns.items() if k in columns}}}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report.generate({TABLE: real[columns]}, {TABLE: synthetic[columns]}, metadata, verbose=False)
    return report


def quality_scores(real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema) -> dict:
    """Overall, per-property and per-column quality scores in [0, 1]."""
    per_column = column_shape_scores(real, synthetic, schema)
    shapes = _mean_of_scored(per_column.values())
    pairs = pair_trends_score(pair_trend_details(real, synthetic, schema))
    return {
        # The mean of the properties that could be scored, as the report's (a one-column table has no pairs).
        "quality_score": _mean_of_scored([shapes, pairs]),
        "column_shapes": shapes,
        "column_pair_trends": pairs,
        "column_shape_scores": per_column,
    }


def column_shape_scores(real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema) -> dict[str, float]:
    """Per column: KSComplement for numbers and dates, TVComplement for categories (no identifiers).

    A column one side holds no value of scores NaN and is left out of the mean, as in the report.
    """
    metrics = {ColumnKind.NUMERICAL: KSComplement, ColumnKind.DATETIME: KSComplement,
               ColumnKind.CATEGORICAL: TVComplement, ColumnKind.BOOLEAN: TVComplement}
    scores = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for column in schema.columns:
            if column.kind in metrics:
                real_values, synthetic_values = real[column.name], synthetic[column.name]
                if metrics[column.kind] is KSComplement:  # dates held as Python objects too
                    real_values, synthetic_values = as_number(real_values), as_number(synthetic_values)
                try:
                    score = metrics[column.kind].compute(real_values, synthetic_values)
                except IncomputableMetricError:
                    score = float("nan")
                scores[column.name] = float(score)
    return scores


def _mean_of_scored(scores) -> float:
    """The mean of the scores that are not NaN (NaN when none is), as SDMetrics' reports average."""
    kept = [score for score in scores if not math.isnan(score)]
    return sum(kept) / len(kept) if kept else float("nan")
