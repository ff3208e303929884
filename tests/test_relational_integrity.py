"""Integrity counts on hand-made tables with known orphans and duplicates, by Arrow and by GX."""

from __future__ import annotations

import pyarrow as pa
import pytest

from synth.expectations import validate_table
from synth.relational.integrity import check_integrity, table_expectations
from synth.relational.schema import RelationalSchema, parse_relational

CONFIG = {
    "patients": {"primary_key": "pid"},
    "visits": {"primary_key": "vid", "foreign_keys": {"pid": "patients.pid"}},
    "labs": {"foreign_keys": {"vid": "visits.vid"}},
}


@pytest.fixture()
def broken():
    tables = {
        "patients": pa.table({"pid": [1, 2, 3, 3, None]}),  # one duplicate, one null
        "visits": pa.table({"vid": [10, 11, 12, 13], "pid": [1, 2, 7, None]}),  # 7 is an orphan, one null
        "labs": pa.table({"vid": [10, 10, 11, 99, 98, 98], "x": [1.0] * 6}),  # three orphans (99, 98, 98)
    }
    return tables, RelationalSchema.from_config(parse_relational({"tables": CONFIG}), tables)


def test_counts_are_known(broken):
    tables, schema = broken
    report = check_integrity(tables, schema)
    keys = {k.table: (k.duplicates, k.nulls) for k in report.keys}
    assert keys == {"patients": (1, 1), "visits": (0, 0)}
    assert report.orphans() == {"visits.pid -> patients.pid": 1, "labs.vid -> visits.vid": 3}
    assert [link.nulls for link in report.links] == [1, 0]
    assert report.problems == 1 + 1 + 1 + 1 + 3


def test_a_clean_extract_has_no_problems():
    tables = {
        "patients": pa.table({"pid": [1, 2]}),
        "visits": pa.table({"vid": [5, 6, 7], "pid": [1, 1, 2]}),
        "labs": pa.table({"vid": [5, 7, 7]}),
    }
    schema = RelationalSchema.from_config(parse_relational({"tables": CONFIG}), tables)
    assert check_integrity(tables, schema).problems == 0


def test_great_expectations_finds_the_same_problems(broken):
    tables, schema = broken
    found = {}
    for name in schema.order:
        outcomes, _ = validate_table(tables[name], table_expectations(name, tables, schema))
        found[name] = {(o.expectation, o.column): (o.success, o.unexpected_count) for o in outcomes}
    assert found["patients"][("expect_column_values_to_be_unique", "pid")] == (False, 2)  # GX counts both copies
    assert found["patients"][("expect_column_values_to_not_be_null", "pid")] == (False, 1)
    assert found["visits"][("expect_column_values_to_be_in_set", "pid")] == (False, 1)
    assert found["visits"][("expect_column_values_to_be_unique", "vid")] == (True, 0)
    assert found["labs"][("expect_column_values_to_be_in_set", "vid")] == (False, 3)
    assert found["labs"][("expect_column_values_to_not_be_null", "vid")] == (True, 0)


def test_a_grandparents_key_that_disagrees_with_the_chain_is_counted():
    config = {**CONFIG, "labs": {"foreign_keys": {"vid": "visits.vid", "pid": "patients.pid"}}}
    tables = {
        "patients": pa.table({"pid": [1, 2]}),
        "visits": pa.table({"vid": [5, 6, 7], "pid": [1, 1, 2]}),
        # visit 7 is patient 2's; the second row says 1; the last row's visit 9 does not exist
        "labs": pa.table({"vid": [5, 7, 7, 9], "pid": [1, 1, 2, 2]}),
    }
    schema = RelationalSchema.from_config(parse_relational({"tables": config}), tables)
    links = {link.relation: (link.orphans, link.mismatches) for link in check_integrity(tables, schema).links}
    assert links == {
        "visits.pid -> patients.pid": (0, 0),
        "labs.vid -> visits.vid": (1, 0),
        "labs.pid -> patients.pid": (0, 1),
    }
    in_set = [e["kwargs"]["column"] for e in table_expectations("labs", tables, schema) if e["type"].endswith("in_set")]
    assert in_set == ["vid", "pid"]
