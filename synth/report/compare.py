"""The comparison page: one self-contained HTML file of bar plots (and, for an ε sweep, curves).

Built from the comparison's rows alone (scores, AUCs, distance medians, seconds): no real
value reaches the page. plotly.js is embedded once, inline, as in the run report.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

import plotly.graph_objects as go
from markupsafe import Markup
from plotly.offline import get_plotlyjs

from synth.io.atomic import write_text_atomic
from synth.report import figures as fig
from synth.report.html import _ENV

#: Bar plots, one per metric: (row key, title, reference line and its meaning).
BARS = [
    ("quality_score", "Quality score (SDMetrics)", None),
    ("column_shapes", "Column shapes", None),
    ("column_pair_trends", "Column pair trends", None),
    ("tstr", "Utility: TSTR on the real holdout", ("trtr", "trained on real (TRTR)")),
    ("mia_auc", "Membership-inference AUC", (0.5, "chance")),
    ("dcr_ratio", "DCR / holdout DCR (below 1: too close)", (1.0, "as close as unseen people")),
    ("fit_seconds", "Fit time (seconds)", None),
    ("sample_seconds", "Sample time (seconds)", None),
]
#: Curves against ε for a sweep.
CURVES = [
    ("quality_score", "Quality score against ε"),
    ("tstr", "Utility (TSTR) against ε"),
    ("mia_auc", "Membership-inference AUC against ε"),
]


def write_compare_page(rows: list[dict], path: str | Path, title: str, sweep: bool = False) -> Path:
    """Render the page and write it atomically; ``sweep`` adds the curves against ε (∞ at the right)."""
    from synth.compare import epsilon_label, privacy_notes, table_cells

    labels = [r.get("label") for r in rows]
    bars = {key: Markup(_bars(key, caption, reference, labels, rows)) for key, caption, reference in BARS}
    x = [epsilon_label(r.get("epsilon")) for r in rows]
    curves = {key: Markup(_curve(caption, x, [_value(r.get(key)) for r in rows])) for key, caption in CURVES} if sweep \
        else {}
    html = _ENV.get_template("compare.html.j2").render(
        title=title, table=table_cells(rows), bars=bars, curves=curves, plotly_js=Markup(get_plotlyjs()),
        errors=[r for r in rows if r.get("error")], notes=privacy_notes(rows),
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )
    return write_text_atomic(path, html)


def _bars(key: str, caption: str, reference, labels: list[str], rows: list[dict]) -> str:
    figure = go.Figure(go.Bar(x=labels, y=[_value(r.get(key)) for r in rows], marker_color=fig.SYNTHETIC,
                              name="trained on synthetic (TSTR)" if key == "tstr" else key))
    if reference and isinstance(reference[0], str):  # a per-variant reference (TRTR beside TSTR)
        figure.add_trace(go.Scatter(x=labels, y=[_value(r.get(reference[0])) for r in rows], mode="markers",
                                    marker={"color": fig.REAL, "symbol": "line-ew-open", "size": 30},
                                    name=reference[1]))
    elif reference:
        figure.add_hline(y=reference[0], line_dash="dash", annotation_text=reference[1])
    figure.update_layout(title=caption, height=340, showlegend=bool(reference and isinstance(reference[0], str)),
                         legend={"orientation": "h", "y": -0.15})
    return fig.to_html(figure)


def _curve(caption: str, x: list[str], y: list[float | None]) -> str:
    # A categorical axis in the sweep's order: ε = ∞ (no DP) sits at the right end.
    figure = go.Figure(go.Scatter(x=x, y=y, mode="lines+markers", marker_color=fig.SYNTHETIC))
    figure.update_layout(title=caption, xaxis={"title": "ε (∞: no differential privacy)", "type": "category"},
                         height=340)
    return fig.to_html(figure)


def _value(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value
