"""Quality: SDMetrics' QualityReport (column shapes and column-pair trends).

Definition: *Column Shapes* averages, over columns, 1 - KS statistic (numbers, dates) or
1 - total variation distance (categories); *Column Pair Trends* averages, over column
pairs, 1 - |correlation difference| / 2 (numeric pairs) or contingency similarity
(others). The quality score is the mean of the two. 1.0 is a perfect match.
Reference: SDMetrics documentation, "Quality Report" (DataCebo).

Identifier columns are left out: synthetic ids are fresh by design.
"""

from __future__ import annotations

import warnings

import pandas as pd
from sdmetrics.reports import QualityReport

from synth.config import ColumnKind
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
    report = generate_report(QualityReport(), real, synthetic, schema)
    properties = report.get_properties().set_index("Property")["Score"]
    shapes = report.get_details("Column Shapes")
    per_column = dict(zip(shapes["Column"], shapes["Score"].astype(float)))
    return {
        "quality_score": float(report.get_score()),
        "column_shapes": float(properties["Column Shapes"]),
        "column_pair_trends": float(properties["Column Pair Trends"]),
        "column_shape_scores": per_column,
    }
