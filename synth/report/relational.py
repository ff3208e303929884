"""The HTML report of a relational run: the verdict, then one section per table (scores and counts only)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from synth.io.atomic import write_text_atomic
from synth.report.html import template


def render_relational_report(metrics: dict, title: str = "Synthetic relational data report") -> str:
    """The report as HTML text, from the relational metrics dict alone (aggregates only).

    Each table's section holds its quality, its rows, its privacy numbers by patient (exact
    copies, closeness, membership inference against the held-out patients' rows, and the
    flat gate's checks on them), and what concerns it as the child of a relation: children
    per parent (KS complement), inter-table pair trends, orphans and the cross-table date
    orders its rows keep.
    """
    sections = []
    for name in metrics["tables"]:
        relation = next((r for r in metrics["cardinality"] if r.startswith(f"{name}.")), None)
        sections.append({
            "name": name,
            "rows": metrics["rows"][name],
            "quality": metrics["quality"][name],
            "relation": relation,
            "cardinality": metrics["cardinality"].get(relation),
            "pair_trends": metrics["pair_trends"].get(relation, {}),
            "orphans": metrics["orphans"].get(relation),
            "date_orders": _orders_with_parent(metrics["date_orders"], name, relation),
            "privacy": (metrics.get("privacy") or {}).get("tables", {}).get(name),
        })
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return template("relational.html.j2").render(
        title=title, metrics=metrics, gate=metrics["gate"], sections=sections, generated=generated
    )


def write_relational_report(metrics: dict, path: str | Path) -> Path:
    """Render and write the report atomically."""
    return write_text_atomic(path, render_relational_report(metrics))


def _orders_with_parent(orders: dict[str, int], table: str, relation: str | None) -> dict[str, int]:
    """The date orders between ``table`` and its parent (keys read ``"a.x <= b.y"``)."""
    if relation is None:
        return {}
    parent = relation.split(" -> ")[1].split(".")[0]
    return {order: broken for order, broken in orders.items()
            if {side.split(".")[0] for side in order.split(" <= ")} == {table, parent}}
