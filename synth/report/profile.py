"""Optional side-by-side data profile (ydata-profiling), for the data owner's eyes only.

A profile shows real minima, maxima and extreme values: row-level facts. It is written to
its own file with a banner saying so, never into report.html, and needs the optional
extra (``pip install 'synth-pipeline[profile]'``): it is not a core dependency.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pandas as pd

from synth.errors import ConfigError
from synth.io.atomic import write_text_atomic

BANNER = (
    '<div style="background:#c62828;color:white;padding:1rem;font:bold 1.1rem system-ui">'
    "CONTAINS AGGREGATES OF REAL DATA (including extreme values). Keep with the real data; never release."
    "</div>"
)
_MODULES = ("ydata_profiling", "fg_data_profiling")  # the package and its community successor


def write_profile(real: pd.DataFrame, synthetic: pd.DataFrame, path: str | Path) -> Path:
    """Profile both tables and write the comparison as one HTML file.

    Raises:
        ConfigError: no profiling package is installed.
    """
    profile_report = _profile_report_class()
    # No sample rows and no duplicate listings: those would be real rows verbatim.
    settings = {"minimal": True, "samples": {"head": 0, "tail": 0, "random": 0}, "duplicates": {"head": 0}}
    real_report = profile_report(real, title="Real (aggregates of real data)", **settings)
    synthetic_report = profile_report(synthetic, title="Synthetic", **settings)
    html = real_report.compare(synthetic_report).to_html()
    html = html.replace("<body>", "<body>" + BANNER, 1) if "<body>" in html else BANNER + html
    return write_text_atomic(path, html)


def _profile_report_class():
    for name in _MODULES:
        try:
            return importlib.import_module(name).ProfileReport
        except ImportError:
            continue
    raise ConfigError(
        "evaluation.profile is on but no profiling package is installed; "
        "install the optional extra: pip install 'synth-pipeline[profile]'"
    )
