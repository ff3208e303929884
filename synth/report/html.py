"""The HTML report: one self-contained file, summary first, no real row-level values."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from synth.io.atomic import write_text_atomic

_ENV = Environment(loader=PackageLoader("synth.report", "templates"), autoescape=select_autoescape(["html", "j2"]))


def render_report(metrics: dict, title: str = "Synthetic data report") -> str:
    """The report as HTML text, from the metrics dict alone (aggregates only)."""
    template = _ENV.get_template("report.html.j2")
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return template.render(title=title, metrics=metrics, generated=generated)


def write_report(metrics: dict, path: str | Path, title: str = "Synthetic data report") -> Path:
    """Render and write the report atomically."""
    return write_text_atomic(path, render_report(metrics, title))
