"""The HTML report: one self-contained file, summary first, no real row-level values.

plotly.js is embedded once, inline (no network access needed to open the file); every
figure is drawn from the evaluation's aggregates (``synth.report.figures``).
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

from jinja2 import Environment, PackageLoader, Undefined, select_autoescape
from markupsafe import Markup
from plotly.offline import get_plotlyjs

from synth.io.atomic import write_text_atomic
from synth.report import figures as fig

_ENV = Environment(loader=PackageLoader("synth.report", "templates"), autoescape=select_autoescape(["html", "j2"]))


def _num(value, digits: int = 3) -> str:
    if isinstance(value, Undefined) or value is None:
        return "n/a"
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{float(value):.{digits}f}"


_ENV.filters["num"] = _num


def template(name: str):
    """A template of ``synth/report/templates`` with the report's filters (``num``)."""
    return _ENV.get_template(name)


def render_report(metrics: dict, title: str = "Synthetic data report") -> str:
    """The report as HTML text, from the metrics dict alone (aggregates only)."""
    template = _ENV.get_template("report.html.j2")
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return template.render(
        title=title,
        metrics=metrics,
        gate=metrics.get("gate") or {"verdict": "not evaluated", "reasons": [], "checks": []},
        plots=_plots(metrics.get("figures") or {}, metrics),
        plotly_js=Markup(get_plotlyjs()),
        generated=generated,
    )


def write_report(metrics: dict, path: str | Path, title: str = "Synthetic data report") -> Path:
    """Render and write the report atomically."""
    return write_text_atomic(path, render_report(metrics, title))


def _plots(figures: dict, metrics: dict) -> dict:
    """HTML fragments per section (empty where a check did not run)."""
    plots: dict = {"distributions": [], "correlation": [], "pca": [], "distance": [], "quality": [], "utility": []}
    for name, data in (figures.get("distributions") or {}).items():
        html = fig.distribution(name, data)
        if html:
            plots["distributions"].append(Markup(html))
    correlation = figures.get("correlation") or {}
    if correlation.get("columns"):
        columns = correlation["columns"]
        plots["correlation"] = [
            Markup(fig.heatmap("Real", columns, correlation["real"], signed=True)),
            Markup(fig.heatmap("Synthetic", columns, correlation["synthetic"], signed=True)),
            Markup(fig.heatmap("Synthetic - real", columns, correlation["difference"], signed=True)),
        ]
    pca = metrics.get("pca") or {}
    if pca.get("explained_variance_real"):
        plots["pca"].append(Markup(fig.explained_variance(pca["explained_variance_real"],
                                                          pca["explained_variance_synthetic"])))
    if (figures.get("pca") or {}).get("x"):
        plots["pca"].append(Markup(fig.pca_density(figures["pca"])))
    if (figures.get("distance") or {}).get("edges"):
        plots["distance"].append(Markup(fig.dcr_histogram(figures["distance"])))
    if metrics.get("column_shape_scores"):
        plots["quality"].append(Markup(fig.scores_bar("Column shape score per column", metrics["column_shape_scores"])))
    if metrics.get("tstr") and metrics.get("trtr"):
        plots["utility"].append(Markup(fig.utility_bars(metrics["tstr"], metrics["trtr"])))
    return plots
