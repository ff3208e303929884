"""Tests for synth.report: the self-contained HTML report, rendered in headless Chromium.

Chromium is required, not optional: CI installs the Debian package ``chromium`` (locally:
``apt-get install -y chromium``). A missing browser fails the test rather than skipping it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import Counter

import numpy as np
import polars as pl
import pytest

from synth.config import parse_config
from synth.evaluation import evaluate
from synth.holdout import split_holdout
from synth.report.html import render_report, write_report
from synth.schema import infer_schema
from tests.conftest import DIABETES_CSV, PIMA_CSV

DIABETES = str(DIABETES_CSV)
# A third of the columns: SDMetrics' pair trends grow with the square of the column count.
COLUMNS = [
    "encounter_id", "patient_nbr", "race", "gender", "age", "admission_type_id", "time_in_hospital",
    "medical_specialty", "num_lab_procedures", "num_medications", "number_inpatient", "diag_1", "A1Cresult",
    "insulin", "diabetesMed", "readmitted",
]
SECTIONS = ["summary", "quality", "distributions", "correlation", "pca", "propensity", "voas-williamson",
            "collisions", "distance", "attacks", "utility", "fairness", "privacy", "sizes"]
SMALL = {"sample_rows": 1_500, "distance_rows": 400, "propensity_rows": 800, "attack_rows": 200,
         "attack_reference_rows": 1_200, "utility_rows": 1_200}


@pytest.fixture(scope="module")
def run():
    table = pl.read_csv(DIABETES, null_values=["?"], n_rows=2_500, infer_schema_length=None, columns=COLUMNS).to_arrow()
    config = parse_config({"evaluation": {"target": "readmitted", "sensitive": ["A1Cresult"],
                                          "protected": ["gender"], **SMALL}})
    schema = infer_schema(table, config)
    train, holdout = split_holdout(table, schema, 0.3, seed=0)
    metrics = evaluate(train, train, schema, config.evaluation, seed=0, holdout=holdout, gate=config.gate)
    return train, metrics | {"epsilon": 2.5}


def test_report_has_every_section_summary_first_and_no_network(run):
    _, metrics = run
    html = render_report(metrics)
    positions = [html.index(f'<section id="{name}">') for name in SECTIONS]
    assert positions == sorted(positions) and positions[0] == min(positions)
    assert "Release gate: <strong id=\"gate-verdict\">FAIL</strong>" in html
    assert "synthetic rows equal to a training row" in html  # the failing check, with its numbers
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="https?:', html)  # self-contained
    assert html.count("<script type=\"text/javascript\">") == 1  # plotly.js once, inline


def test_report_shows_no_rare_real_values(run):
    train, metrics = run
    html = render_report(metrics)
    specialties = Counter(v for v in train["medical_specialty"].to_pylist() if v)
    rare = [name for name, count in specialties.items() if count < 10 and len(name) > 6]
    common = [name for name, count in specialties.items() if count >= 50]
    assert rare and common
    # As whole labels: quoted in the plot data or alone in a table cell ("Pediatrics" is also a
    # prefix of the common "Pediatrics-Endocrinology").
    # Plotly writes "/" as "\u002f" in its JSON.
    def shown(name: str) -> bool:
        quoted = f'"{name}"'
        return quoted in html or quoted.replace("/", "\\u002f") in html or f">{name}<" in html

    assert not [name for name in rare if shown(name)]
    assert all(shown(name) for name in common)


def test_report_renders_in_headless_chromium(run, tmp_path):
    _, metrics = run
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.fail("chromium is required for this test: apt-get update && apt-get install -y chromium")
    page = write_report(metrics, tmp_path / "report.html")
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=5000", "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    for name in SECTIONS:
        assert f'id="{name}"' in dom, name
    assert dom.count('class="main-svg"') >= 10  # plotly drew the figures (its SVG exists only after JS ran)
    assert 'id="gate-verdict">FAIL<' in dom


def test_profile_needs_the_optional_extra(monkeypatch, tmp_path):
    import importlib

    import pandas as pd

    from synth.errors import ConfigError
    from synth.report import profile

    def missing(name):
        raise ImportError(name)

    monkeypatch.setattr(importlib, "import_module", missing)
    with pytest.raises(ConfigError, match=r"synth-pipeline\[profile\]"):
        profile.write_profile(pd.DataFrame({"x": [1]}), pd.DataFrame({"x": [2]}), tmp_path / "profile.html")


def test_profile_is_marked_as_real_data_and_shows_no_sample_rows(monkeypatch, tmp_path):
    import types

    import pandas as pd

    from synth.report import profile

    seen = []

    class FakeReport:  # stands in for ydata_profiling.ProfileReport
        def __init__(self, frame, title, **settings):
            seen.append(settings)

        def compare(self, other):
            return types.SimpleNamespace(to_html=lambda: "<html><body><p>profile</p></body></html>")

    monkeypatch.setitem(__import__("sys").modules, "ydata_profiling", types.SimpleNamespace(ProfileReport=FakeReport))
    path = profile.write_profile(pd.DataFrame({"x": [1]}), pd.DataFrame({"x": [2]}), tmp_path / "profile.html")
    assert "CONTAINS AGGREGATES OF REAL DATA" in path.read_text()
    assert all(s["samples"] == {"head": 0, "tail": 0, "random": 0} for s in seen) and len(seen) == 2


def _drawn_positions(html: str) -> dict[str, list]:
    """Per figure title, every x position its traces draw (from the data of each Plotly.newPlot call):
    for a column's histogram, the bin centres on its value axis, where a real value would show."""
    decoder, drawn = json.JSONDecoder(), {}
    for call in re.finditer(r'Plotly\.newPlot\(\s*"[^"]+",\s*', html):
        traces, end = decoder.raw_decode(html, call.end())
        layout, _ = decoder.raw_decode(html, re.compile(r",\s*").match(html, end).end())
        title = (layout.get("title") or {}).get("text")
        drawn.setdefault(title, []).extend(v for trace in traces for v in trace.get("x") or [])
    return drawn


def _appointments():
    from tests.tables import appointments

    frame = appointments(patients=2_000, seed=3).with_columns(
        pl.col(c).str.to_datetime(time_zone="UTC") for c in ("ScheduledDay", "AppointmentDay")
    )
    return frame.to_arrow(), {"target": "No-show", "protected": ["Age"], "sensitive": ["Hipertension"]}


def _pima():
    return pl.read_csv(str(PIMA_CSV)).to_arrow(), {"target": "Outcome", "protected": ["BMI"], "sensitive": ["Age"]}


@pytest.fixture(scope="module", params=[_appointments, _pima], ids=["appointments", "pima"])
def disclosure(request):
    table, settings = request.param()
    config = parse_config({"evaluation": {**SMALL, **settings}})
    schema = infer_schema(table, config)
    train, holdout = split_holdout(table, schema, 0.3, seed=0)
    metrics = evaluate(train, train, schema, config.evaluation, seed=0, holdout=holdout, gate=config.gate)
    return train, schema, metrics


def test_report_and_metrics_disclose_no_real_value(disclosure):
    from plotly.offline import get_plotlyjs

    from synth.config import ColumnKind

    train, schema, metrics = disclosure
    html = render_report(metrics)
    library = get_plotlyjs()
    assert html.count(library) == 1  # plotly.js, byte for byte as the package ships it, once
    ours = html.replace(library, "")  # the rest is ours: template, tables, figure data
    # Nothing is fetched when the file is opened: no external script, style, frame, image or font.
    for pattern in (r"url\(", r"@import", r"<iframe", r"<frame", r"<object", r"<embed", r"<script[^>]*\bsrc=",
                    r"<link", r"<img", r"https?://", r"//[a-z0-9.-]+\.[a-z]{2,}/"):
        assert not re.search(pattern, ours, re.IGNORECASE), pattern
    drawn = _drawn_positions(ours)
    published = json.dumps({k: v for k, v in metrics.items() if k != "figures"})
    for spec in schema.columns:
        if spec.kind not in (ColumnKind.NUMERICAL, ColumnKind.DATETIME):
            continue
        values = [v for v in train[spec.name].to_pylist() if v is not None]
        if spec.kind is ColumnKind.DATETIME:
            # No real instant, in any form: ISO text to the second, or seconds since the epoch.
            stamps = {v.strftime("%Y-%m-%dT%H:%M:%S") for v in values if v.second or v.minute or v.hour}
            seconds = {v.timestamp() for v in values if v.second or v.minute or v.hour}
            assert not [s for s in stamps if s in ours or s in published], spec.name
            assert not seconds & set(drawn[spec.name]), spec.name
            continue
        edges = np.array(metrics["figures"]["distributions"][spec.name]["edges"])
        step = edges[1] - edges[0]
        assert np.allclose(edges / step, np.round(edges / step)), spec.name  # a public grid...
        mantissa = step / 10 ** np.floor(np.log10(step))
        assert min(abs(mantissa - m) for m in (1, 2, 2.5, 5)) < 1e-9, (spec.name, step)  # ... of nice steps
        assert drawn[spec.name], spec.name  # the histogram is there, and shows no real extreme (a grid
        for extreme in (min(values), max(values)):  # point - an edge or a bin's centre - is public anyway)
            on_grid = np.isclose((extreme / (step / 2)) % 1, 0) or np.isclose((extreme / (step / 2)) % 1, 1)
            assert on_grid or extreme not in drawn[spec.name], (spec.name, extreme)
    assert "real_max" not in published and "real_min" not in published


def test_report_states_the_gate_override_and_its_reason(run):
    _, metrics = run
    from synth.evaluation.gate import gate_verdict

    options = parse_config({"gate": {"enforce": False, "reason": "public teaching data"}}).gate
    html = render_report(metrics | {"gate": gate_verdict(metrics, options)})
    assert 'id="gate-verdict">NOT ENFORCED: public teaching data (verdict FAIL)<' in html
    assert "not enforced" in html and 'id="gate-reason"' in html
    relaxed = parse_config({"gate": {"min_quality": 0.5, "reason": "a pilot"}}).gate
    html = render_report(metrics | {"gate": gate_verdict(metrics, relaxed)})
    assert "min_quality 0.5 (default 0.7)" in html and "a pilot" in html
