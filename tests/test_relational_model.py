"""The relational synthesizer on a generated three-level extract: patients -> visits -> labs."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from synth.config import parse_config
from synth.errors import ConfigError, SchemaError
from synth.relational.evaluation import children_per_parent, evaluate_relational
from synth.relational.integrity import check_integrity
from synth.relational.model import RelationalSynthesizer
from tests.relational_tables import three_level

SMALL = {"model": {"epochs": 30, "hidden_dims": [64, 64], "batch_size": 128, "latent_dim": 8}}


@pytest.fixture(scope="module")
def fitted():
    tables, schema = three_level()
    model = RelationalSynthesizer().fit(tables, schema, parse_config(SMALL))
    synthetic = model.sample(tables["patients"].num_rows, seed=1)
    return tables, schema, model, synthetic


def test_keys_are_intact_and_fresh(fitted):
    real, schema, _, synthetic = fitted
    assert check_integrity(synthetic, schema).problems == 0  # no orphans, duplicate or null keys
    for name, key in schema.primary_keys.items():
        reused = pc.sum(pc.is_in(synthetic[name][key], value_set=real[name][key].combine_chunks())).as_py()
        assert reused == 0, f"{name}.{key} reuses real keys"
    assert synthetic["labs"]["lab_id"].type == pa.string()  # text keys stay text


def test_the_tree_is_rebuilt_with_real_cardinalities_and_dates_in_order(fitted):
    real, schema, model, synthetic = fitted
    result = evaluate_relational(real, synthetic, schema, {n: m.schema for n, m in model.tables_.items()})
    print({k: result[k] for k in ("cardinality", "pair_trends", "orphans", "date_orders")})
    assert set(result["orphans"].values()) == {0}
    relations = {"visits.patient_id -> patients.patient_id", "labs.visit_id -> visits.visit_id"}
    assert set(result["cardinality"]) == relations
    assert min(result["cardinality"].values()) >= 0.9
    # every order the generator builds holds in the real rows, so each is checked, and none is broken
    assert result["date_orders"] == {
        "patients.registered <= visits.admitted": 0,
        "patients.registered <= visits.discharged": 0,
        "visits.admitted <= labs.taken": 0,
        "labs.taken <= visits.discharged": 0,
    }
    assert result["pair_trends"]["visits.patient_id -> patients.patient_id"]["patients.age ~ count"] >= 0.75
    assert min(q["quality_score"] for q in result["quality"].values()) >= 0.8


def test_children_counts_include_parents_without_children(fitted):
    real, schema, _, synthetic = fitted
    relation = schema.parent_relation("visits")
    counts = children_per_parent(real, relation)
    assert len(counts) == real["patients"].num_rows and (counts == 0).sum() > 0
    assert (children_per_parent(synthetic, relation) == 0).sum() > 0  # the model draws zeros too


def test_same_seed_same_tables_other_seed_other_tables(fitted):
    _, _, model, first = fitted
    again = model.sample(300, seed=1)
    assert all(again[name].equals(first[name]) for name in first)
    assert not model.sample(300, seed=2)["patients"].equals(first["patients"])


def test_save_and_load_give_the_same_samples(fitted, tmp_path):
    _, schema, model, _ = fitted
    model.save(tmp_path / "model")
    loaded = RelationalSynthesizer.load(tmp_path / "model")
    assert loaded.schema_ == schema
    expected, got = model.sample(50, seed=7), loaded.sample(50, seed=7)
    assert all(got[name].equals(expected[name]) for name in expected)


def test_orphans_are_refused_plainly():
    tables, schema = three_level(n_patients=30)
    orphans = pa.array([1] * tables["visits"].num_rows)  # no patient has id 1
    broken = dict(tables, visits=tables["visits"].set_column(1, "patient_id", orphans))
    with pytest.raises(SchemaError, match="keys are not intact"):
        RelationalSynthesizer().fit(broken, schema, parse_config(SMALL))


def test_a_root_row_without_children_gives_empty_tables_with_the_real_columns(fitted):
    real, _, model, _ = fitted
    empty = None
    for seed in range(200):
        out = model.sample(1, seed=seed)
        if out["visits"].num_rows == 0:
            empty = out
            break
    assert empty is not None, "no seed drew a patient without visits"
    assert empty["labs"].num_rows == 0
    assert empty["visits"].schema == real["visits"].schema and empty["labs"].schema == real["labs"].schema


def test_a_grandparents_key_is_copied_down_the_chain():
    tables, schema = three_level(n_patients=80, labs_carry_patient=True)
    tiny = {"model": {"epochs": 5, "hidden_dims": [32], "batch_size": 128, "latent_dim": 4}}
    model = RelationalSynthesizer().fit(tables, schema, parse_config(tiny))
    assert "patient_id" not in model.tables_["labs"].body.names  # a key, never modelled
    synthetic = model.sample(80, seed=3)
    report = check_integrity(synthetic, schema)
    assert report.problems == 0 and synthetic["labs"].num_rows > 0
    assert {link.relation: link.mismatches for link in report.links}["labs.patient_id -> patients.patient_id"] == 0


def test_a_root_of_text_keys_only_draws_its_children_counts():
    tables, schema = three_level(n_patients=60)
    text = pc.binary_join_element_wise("P", pc.cast(tables["patients"]["patient_id"], pa.string()), "")
    as_text = dict(zip(tables["patients"]["patient_id"].to_pylist(), text.to_pylist()))
    visits = tables["visits"]
    tables = dict(
        tables,
        patients=pa.table({"patient_id": text}),
        visits=visits.set_column(1, "patient_id", pa.array([as_text[p] for p in visits["patient_id"].to_pylist()])),
    )
    tiny = parse_config({"model": {"epochs": 3, "hidden_dims": [16], "latent_dim": 4}})
    synthetic = RelationalSynthesizer().fit(tables, schema, tiny).sample(30, seed=0)
    assert synthetic["patients"].schema == tables["patients"].schema and synthetic["patients"].num_rows == 30
    assert synthetic["visits"].num_rows > 0 and check_integrity(synthetic, schema).problems == 0
    assert not set(synthetic["patients"]["patient_id"].to_pylist()) & set(text.to_pylist())

    leaf_of_keys = dict(tables, labs=tables["labs"].select(["lab_id", "visit_id"]))
    with pytest.raises(SchemaError, match="table 'labs': every column is an identifier"):
        RelationalSynthesizer().fit(leaf_of_keys, schema, tiny)


def test_a_column_setting_applies_to_the_table_holding_it_and_an_unknown_one_is_named():
    tables, schema = three_level(n_patients=40)
    with pytest.raises(ConfigError, match=r"config columns.nope: no such column in any table \(patients, visits, labs\)"):
        RelationalSynthesizer().fit(tables, schema, parse_config({"columns": {"nope": "categorical"}}))
    config = parse_config({"columns": {"age": "categorical"}, "drop": ["test"], "model": {"epochs": 1}})
    model = RelationalSynthesizer().fit(tables, schema, config)
    assert model.tables_["patients"].body["age"].kind.value == "categorical"
    assert "test" not in model.tables_["labs"].body.names
