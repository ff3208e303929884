"""Tests for synth.expectations: the suite from the schema, GX on a partition, the gate's verdict."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synth.config import PipelineConfig, ValidationOptions
from synth.errors import ConfigError
from synth.expectations import (
    ROW_COUNT,
    UNIQUE,
    Outcome,
    build_expectations,
    gate_result,
    load_suite,
    merge_suites,
    profile_sample,
    validate_table,
)
from synth.preprocess import preprocess
from synth.schema import infer_schema


@pytest.fixture(scope="module")
def diabetes(diabetes_csv) -> pl.DataFrame:
    return pl.read_csv(diabetes_csv, null_values=["?"], infer_schema_length=None).sample(2_000, seed=5)


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return pa.table(
        {
            "patient": [1, 1, 2, 3, 4, 5, 6, 7],
            "visit": [10, 11, 12, 13, 14, 15, 16, 17],
            "age": [30.0, 40.0, None, 50.0, 60.0, 70.0, 80.0, 90.0],
            "sex": ["F", "M", "F", "M", "F", "M", "F", None],
        }
    )


def _by_identity(expectations: list[dict]) -> dict:
    return {(e["type"], e["kwargs"].get("column")): e["kwargs"] for e in expectations}


def test_suite_covers_types_nulls_ranges_categories_keys_and_rows(table):
    config = PipelineConfig(entity_key="patient", columns={"visit": "identifier", "age": "numerical"})
    schema = infer_schema(table, config)
    suite = _by_identity(build_expectations(schema, profile_sample(table, schema), ValidationOptions(max_rows=100)))
    assert suite[("expect_column_values_to_be_in_type_list", "age")]["type_list"][:3] == [
        "float16",
        "float32",
        "float64",
    ]
    assert "mostly" not in suite[("expect_column_values_to_not_be_null", "patient")]  # the key is never null
    assert suite[("expect_column_values_to_not_be_null", "age")]["mostly"] == pytest.approx(1 - (1 / 8 + 0.05))
    between = suite[("expect_column_values_to_be_between", "age")]
    assert (between["min_value"], between["max_value"]) == pytest.approx((24.0, 96.0))  # widened 10% of the span
    assert suite[("expect_column_values_to_be_in_set", "sex")]["value_set"] == ["F", "M"]
    assert (UNIQUE, "visit") in suite and (UNIQUE, "patient") not in suite
    assert suite[(ROW_COUNT, None)] == {"min_value": 1, "max_value": 100}


def test_user_suite_replaces_and_adds(tmp_path, table):
    schema = infer_schema(table, PipelineConfig(entity_key="patient", columns={"visit": "identifier"}))
    built = build_expectations(schema, profile_sample(table, schema), ValidationOptions())
    path = tmp_path / "suite.json"
    path.write_text(
        json.dumps(
            {
                "name": "trust rules",
                "expectations": [
                    {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "sex", "value_set": ["F"]}},
                    {
                        "expectation_type": "expect_column_values_to_be_between",
                        "kwargs": {"column": "visit", "min_value": 0, "max_value": 100},
                    },
                ],
            }
        )
    )
    merged = _by_identity(merge_suites(built, load_suite(path)))
    assert merged[("expect_column_values_to_be_in_set", "sex")] == {"column": "sex", "value_set": ["F"]}
    assert ("expect_column_values_to_be_between", "visit") in merged
    assert len(merged) == len(_by_identity(built)) + 1


def test_unknown_expectation_in_user_suite_is_a_config_error(tmp_path):
    path = tmp_path / "suite.json"
    path.write_text(json.dumps({"expectations": [{"type": "expect_the_moon", "kwargs": {}}]}))
    with pytest.raises(ConfigError, match="expect_the_moon"):
        load_suite(path)


def test_validate_table_returns_counts_never_values(table):
    expectations = [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "age"}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "sex", "value_set": ["F"]}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "patient"}},
        {"type": "expect_column_values_to_be_in_type_list", "kwargs": {"column": "sex", "type_list": ["Int64Dtype"]}},
        {"type": "expect_column_to_exist", "kwargs": {"column": "missing"}},
    ]
    outcomes, full = validate_table(table, expectations)
    found = {(o.expectation, o.column): o for o in outcomes}
    assert found[("expect_column_values_to_not_be_null", "age")].unexpected_count == 1
    in_set = found[("expect_column_values_to_be_in_set", "sex")]
    assert (in_set.unexpected_count, in_set.element_count, in_set.missing_count) == (3, 8, 1)
    assert found[("expect_column_values_to_be_unique", "patient")].unexpected_count == 2
    assert found[("expect_column_values_to_be_in_type_list", "sex")].observed == "str"
    assert not found[("expect_column_to_exist", "missing")].success
    assert "M" not in json.dumps([o.__dict__ for o in outcomes])  # counts only leave the worker
    assert full["success"] is False


def test_each_column_family_passes_its_own_type_check_and_counts_values_alike_with_or_without_gaps():
    """Value checks run on categorical text and NumPy integers, type checks on no rows: same verdicts and counts."""
    from synth.expectations import _type_list

    table = pa.table(
        {
            "whole": pa.array([1, 2, 3, 40, 5, 6], pa.int64()),  # no gaps: NumPy's integers
            "gappy": pa.array([1, None, 3, 40, 5, None], pa.int32()),  # gaps: pandas' nullable integers
            "real": pa.array([0.5, None, 1.5, 9.0, 2.0, 2.5]),
            "text": pa.array(["a", "b", None, "z", "a", "b"]),
            "code": pa.array(["x", "y", "x", "x", "y", "w"]).dictionary_encode(),
            "flag": pa.array([True, None, False, True, True, False]),
            "when": pa.array([0, 1, 2, 3, None, 5], pa.timestamp("ms", tz="UTC")),
        }
    )
    expectations = [
        {"type": "expect_column_values_to_be_in_type_list", "kwargs": {"column": n, "type_list": _type_list(t)}}
        for n, t in zip(table.column_names, table.schema.types)
    ] + [
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": c, "min_value": 0, "max_value": 10}}
        for c in ("whole", "gappy", "real")
    ] + [
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": c, "value_set": ["a", "b", "x", "y"]}}
        for c in ("text", "code")
    ] + [{"type": "expect_column_values_to_be_unique", "kwargs": {"column": "text"}}]
    outcomes, full = validate_table(table, expectations)
    found = {(o.expectation, o.column): o for o in outcomes}
    assert all(found[("expect_column_values_to_be_in_type_list", n)].success for n in table.column_names)
    assert found[("expect_column_values_to_be_in_type_list", "text")].observed == "str"
    for column, counts in {"whole": (1, 6, 0), "gappy": (1, 6, 2), "real": (0, 6, 1)}.items():
        between = found[("expect_column_values_to_be_between", column)]
        assert (between.unexpected_count, between.element_count, between.missing_count) == counts, column
    for column, counts in {"text": (1, 6, 1), "code": (1, 6, 0)}.items():
        in_set = found[("expect_column_values_to_be_in_set", column)]
        assert (in_set.unexpected_count, in_set.element_count, in_set.missing_count) == counts, column
    assert found[("expect_column_values_to_be_unique", "text")].unexpected_count == 4  # a, a, b, b
    # one JSON result for the partition: every expectation, one verdict
    assert len(full["results"]) == len(expectations) and full["success"] is False
    assert full["statistics"]["evaluated_expectations"] == len(expectations)
    # an integer column does not pass as text, nor text as an integer
    wrong = [
        {"type": "expect_column_values_to_be_in_type_list", "kwargs": {"column": c, "type_list": _type_list(t)}}
        for c, t in (("whole", pa.string()), ("text", pa.int64()))
    ]
    assert not any(o.success for o in validate_table(table, wrong)[0])


def test_gate_judges_mostly_on_the_whole_extract():
    def nulls(unexpected: int) -> Outcome:
        return Outcome("expect_column_values_to_not_be_null", "x", unexpected <= 10, 100, unexpected, mostly=0.9)

    # one partition over the limit, the extract under it: passes
    assert gate_result({0: [nulls(15)], 1: [nulls(0)]}, 200, 2, [], {}, 1).success
    failed = gate_result({0: [nulls(15)], 1: [nulls(12)]}, 200, 2, [], {}, 1)
    assert not failed.success
    failure = failed.failures[0]
    assert (failure.column, failure.partitions_failed, failure.unexpected_count, failure.element_count) == (
        "x",
        2,
        27,
        200,
    )
    rows = gate_result({}, 5, 1, [{"type": ROW_COUNT, "kwargs": {"min_value": 10}}], {"id": 3}, 1)
    assert {f.expectation for f in rows.failures} == {ROW_COUNT, UNIQUE}
    assert "| expect_column_values_to_be_unique | id |" in rows.markdown()


def test_gate_blocks_a_bad_extract_with_a_readable_report(diabetes, tmp_path):
    """Validated against a good month's suite: new nulls, unknown codes, a month resent, too few rows."""
    config = {
        "entity_key": "patient_nbr",
        "columns": {"encounter_id": "identifier"},
        "preprocess": {"partition_rows": 1_000},
    }
    good = tmp_path / "good.parquet"
    pq.write_table(diabetes.slice(0, 1_000).to_arrow(), good)
    reference = preprocess(
        str(good), PipelineConfig.model_validate(config), tmp_path / "ref", workers=1, log=lambda _: None
    )
    assert reference.gate.success
    suite = json.loads((tmp_path / "ref" / "expectations.json").read_text())
    suite["expectations"].append({"type": ROW_COUNT, "kwargs": {"min_value": 10_000}})
    (tmp_path / "suite.json").write_text(json.dumps(suite))

    bad_month = diabetes.slice(1_000, 1_000).with_columns(
        pl.when(pl.int_range(pl.len()) < 400).then(None).otherwise(pl.col("num_medications")).alias("num_medications"),
        pl.when(pl.int_range(pl.len()) < 300)
        .then(pl.lit("Unknown/Invalid code"))
        .otherwise(pl.col("race"))
        .alias("race"),
    )
    extract = tmp_path / "extract"
    extract.mkdir()
    pq.write_table(diabetes.slice(0, 1_000).to_arrow(), extract / "2024-01.parquet")
    pq.write_table(diabetes.slice(0, 1_000).to_arrow(), extract / "2024-01-resent.parquet")  # delivered twice
    pq.write_table(bad_month.to_arrow(), extract / "2024-02.parquet")
    config["validation"] = {"suite": str(tmp_path / "suite.json")}
    prepared = preprocess(
        str(extract), PipelineConfig.model_validate(config), tmp_path / "work", workers=2, log=lambda _: None
    )

    gate = prepared.gate
    assert not gate.success
    failures = {(f.expectation, f.column): f for f in gate.failures}
    nulls = failures[("expect_column_values_to_not_be_null", "num_medications")]
    assert (nulls.unexpected_count, nulls.element_count, nulls.partitions_failed) == (400, 3_000, 1)
    assert failures[("expect_column_values_to_be_in_set", "race")].unexpected_count == 300
    assert failures[(UNIQUE, "encounter_id")].unexpected_count == 1_000
    assert failures[(ROW_COUNT, None)].element_count == 3_000
    report = Path(prepared.report_path).read_text()
    assert "FAILED" in report
    assert "| expect_column_values_to_not_be_null | num_medications | 1 | 400 | 3,000 |" in report
    assert "Unknown/Invalid code" not in report  # the report quotes counts, never values
