"""Validity: SDMetrics' DiagnosticReport (data validity and data structure).

Definition: *Data Validity* averages, over columns, BoundaryAdherence (share of synthetic
numbers and dates inside the real min-max range) and CategoryAdherence (share of
synthetic categories that exist in the real data); *Data Structure* is 1 when the
synthetic table has the real table's columns. The diagnostic score is their mean;
1.0 means every synthetic value is of a kind the real data holds.
Reference: SDMetrics documentation, "Diagnostic Report" (DataCebo).

Identifier columns are left out: synthetic ids are fresh by design.
"""

from __future__ import annotations

import pandas as pd
from sdmetrics.reports import DiagnosticReport

from synth.evaluation.quality import generate_report
from synth.schema import Schema


def diagnostic_scores(real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema) -> dict:
    """Overall and per-property validity scores in [0, 1], and the per-column validity."""
    report = generate_report(DiagnosticReport(), real, synthetic, schema)
    properties = report.get_properties().set_index("Property")["Score"]
    validity = report.get_details("Data Validity")
    return {
        "diagnostic_score": float(report.get_score()),
        "validity": float(properties["Data Validity"]),
        "structure": float(properties["Data Structure"]),
        "validity_scores": {str(c): float(s) for c, s in zip(validity["Column"], validity["Score"])},
    }
