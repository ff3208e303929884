"""Plotly figures for the report, built from the evaluation's aggregates only.

Every figure here takes binned densities, shares or matrices that the checks computed
(with small counts already suppressed); none takes a row of data, so the report cannot
leak one. Figures are returned as HTML fragments without plotly.js: the page embeds
plotly.js once, inline, so the file works offline.
"""

from __future__ import annotations

from datetime import datetime, timezone

import plotly.graph_objects as go

REAL, SYNTHETIC, HOLDOUT = "#1f77b4", "#ff7f0e", "#2ca02c"
_CONFIG = {"displaylogo": False, "responsive": True}


def to_html(figure: go.Figure) -> str:
    """A ``<div>`` fragment; plotly.js comes from the page."""
    figure.update_layout(margin={"l": 40, "r": 10, "t": 40, "b": 40}, template="plotly_white")
    return figure.to_html(full_html=False, include_plotlyjs=False, config=_CONFIG)


def distribution(name: str, data: dict) -> str | None:
    """Real vs synthetic density (numbers, dates) or shares (categories) of one column."""
    if data.get("type") == "histogram":
        edges = data["edges"]
        centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
        if data.get("datetime"):
            centres = [datetime.fromtimestamp(c, tz=timezone.utc).isoformat() for c in centres]
        figure = go.Figure(
            [
                go.Bar(x=centres, y=data["real"], name="real", marker_color=REAL, opacity=0.6),
                go.Bar(x=centres, y=data["synthetic"], name="synthetic", marker_color=SYNTHETIC, opacity=0.6),
            ]
        )
        figure.update_layout(barmode="overlay", bargap=0, yaxis_title="share of rows")
    elif data.get("type") == "bars":
        figure = go.Figure(
            [
                go.Bar(x=data["categories"], y=data["real"], name="real", marker_color=REAL),
                go.Bar(x=data["categories"], y=data["synthetic"], name="synthetic", marker_color=SYNTHETIC),
            ]
        )
        figure.update_layout(barmode="group", yaxis_title="share of rows")
    else:
        return None
    figure.update_layout(title=name, height=300)
    return to_html(figure)


def heatmap(title: str, columns: list[str], matrix: list[list[float]], signed: bool) -> str:
    """An association matrix; ``signed`` centres the colour scale on 0."""
    figure = go.Figure(
        go.Heatmap(
            z=matrix,
            x=columns,
            y=columns,
            zmin=-1 if signed else 0,
            zmax=1,
            colorscale="RdBu" if signed else "Blues",
            reversescale=signed,
        )
    )
    figure.update_layout(title=title, height=520, yaxis={"autorange": "reversed"})
    return to_html(figure)


def pca_density(data: dict) -> str:
    """2-D density contours of the first two real principal components, real and synthetic."""
    figure = go.Figure(
        [
            go.Contour(x=data["x"], y=data["y"], z=data["real"], name="real", showscale=False,
                       colorscale="Blues", contours={"coloring": "lines"}, line={"width": 2}),
            go.Contour(x=data["x"], y=data["y"], z=data["synthetic"], name="synthetic", showscale=False,
                       colorscale="Oranges", contours={"coloring": "lines"}, line={"width": 2, "dash": "dot"}),
        ]
    )
    figure.update_layout(title="PC1 x PC2 density (real: solid blue, synthetic: dotted orange)",
                         xaxis_title="PC1", yaxis_title="PC2", height=450)
    return to_html(figure)


def explained_variance(real: list[float], synthetic: list[float]) -> str:
    axes = [f"PC{k + 1}" for k in range(len(real))]
    figure = go.Figure(
        [
            go.Bar(x=axes, y=real, name="real", marker_color=REAL),
            go.Bar(x=axes, y=synthetic, name="synthetic (on the real axes)", marker_color=SYNTHETIC),
        ]
    )
    figure.update_layout(title="Variance along the real principal axes", yaxis_title="share of real variance",
                         barmode="group", height=320)
    return to_html(figure)


def dcr_histogram(data: dict) -> str:
    edges = data["edges"]
    centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
    figure = go.Figure(
        [
            go.Bar(x=centres, y=data["holdout"], name="holdout (never seen)", marker_color=HOLDOUT, opacity=0.6),
            go.Bar(x=centres, y=data["synthetic"], name="synthetic", marker_color=SYNTHETIC, opacity=0.6),
        ]
    )
    figure.update_layout(title="Distance to the closest training record", xaxis_title="Gower distance",
                         yaxis_title="share of rows", barmode="overlay", bargap=0, height=320)
    return to_html(figure)


def scores_bar(title: str, scores: dict[str, float]) -> str:
    figure = go.Figure(go.Bar(x=list(scores), y=list(scores.values()), marker_color=SYNTHETIC))
    figure.update_layout(title=title, yaxis={"range": [0, 1]}, height=320)
    return to_html(figure)


def utility_bars(tstr: dict, trtr: dict) -> str:
    names = [k for k in trtr if trtr[k] is not None]
    figure = go.Figure(
        [
            go.Bar(x=names, y=[trtr[k] for k in names], name="train real, test real (TRTR)", marker_color=REAL),
            go.Bar(x=names, y=[tstr.get(k) for k in names], name="train synthetic, test real (TSTR)",
                   marker_color=SYNTHETIC),
        ]
    )
    figure.update_layout(title="Model trained on synthetic vs on real data, tested on the real holdout",
                         barmode="group", height=320)
    return to_html(figure)
