"""The MIMIC-III demo as four related tables, and the relational model on them."""

from __future__ import annotations

import json

import pytest

from synth.config import parse_config
from synth.demo.mimic_relational import build_relational_tables
from synth.relational.evaluation import evaluate_relational
from synth.relational.integrity import check_integrity
from synth.relational.model import RelationalSynthesizer

EVENTS_PER_STAY = 20
SMALL = {"model": {"epochs": 60, "hidden_dims": [64, 64], "batch_size": 64, "latent_dim": 8}}


@pytest.fixture(scope="module")
def demo():
    return build_relational_tables(max_events_per_stay=EVENTS_PER_STAY)


def test_the_demo_tables_are_a_tree_with_intact_keys(demo):
    tables, schema = demo
    assert schema.order == ("patients", "admissions", "icustays", "outputevents")
    assert {name: t.num_rows for name, t in tables.items()} == {
        "patients": 100, "admissions": 129, "icustays": 136, "outputevents": 2230,
    }  # fmt: skip
    assert check_integrity(tables, schema).problems == 0
    assert "subject_id" not in tables["icustays"].column_names  # only the direct parent's key is read


def test_the_relational_model_keeps_keys_cardinalities_and_date_orders(demo):
    # All 11,319 events are covered end to end by test_relational_run's demo test.
    tables, schema = demo
    model = RelationalSynthesizer().fit(tables, schema, parse_config(SMALL))
    synthetic = model.sample(tables["patients"].num_rows, seed=1)
    result = evaluate_relational(tables, synthetic, schema, {n: m.schema for n, m in model.tables_.items()})
    shown = {k: result[k] for k in ("cardinality", "pair_trends", "orphans", "date_orders")}
    shown["quality"] = {name: round(q["quality_score"], 3) for name, q in result["quality"].items()}
    shown["rows"] = {name: t.num_rows for name, t in synthetic.items()}
    print(json.dumps(shown, indent=1))

    assert set(result["orphans"].values()) == {0}
    assert len(result["cardinality"]) == 3 and min(result["cardinality"].values()) >= 0.9
    # The orders the issue names, where they hold in the real demo (ICU out <= discharge holds
    # in only 72% of its stays, so it is neither imposed nor checked), and none broken.
    for order in (
        "admissions.admittime <= icustays.intime",
        "icustays.intime <= admissions.dischtime",
        "icustays.intime <= outputevents.charttime",
        "outputevents.charttime <= icustays.outtime",
    ):
        assert result["date_orders"][order] == 0
    assert sum(result["date_orders"].values()) == 0
    assert set(result["quality"]) == set(schema.order)
    # The 100-patient table has one scored pair (gender ~ date of death, Cramér's V 0.35): on the
    # real data's bins it scores 0.36 (quality 0.555); SDMetrics' report, binning each side on its
    # own range, gave the same model 0.685.
    assert min(q["quality_score"] for q in result["quality"].values()) >= 0.5
    assert min(q["quality_score"] for name, q in result["quality"].items() if name != "patients") >= 0.75
