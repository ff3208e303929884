"""Tests for synth.io.sql against a real PostgreSQL server (and SQLite for the dialect-free path).

``.ci/run`` installs and starts PostgreSQL and exports ``SYNTH_TEST_POSTGRES_URL``; these
tests fail in CI without it and are skipped only on a developer machine that has none.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pyarrow as pa
import pytest
import sqlalchemy as sa

from synth.errors import SourceError
from synth.io import sql
from tests.postgres import postgres  # noqa: F401  (a fixture)


def _table() -> pa.Table:
    return pa.table(
        {
            "id": pa.array([1, 2, None], pa.int64()),
            "label": ['a,"quoted"', None, ""],
            "value": [1.5, None, -2.0],
            "at": pa.array([dt.datetime(2020, 1, 1, 8), None, dt.datetime(2021, 5, 6, 7, 8, 9)], pa.timestamp("us")),
            "flag": [True, None, False],
            "day": pa.array([dt.date(2020, 1, 2), None, dt.date(1999, 12, 31)], pa.date32()),
            "code": pa.array(["x", "y", "x"]).dictionary_encode(),
        }
    )


def _staging_tables(engine: sa.Engine, schema: str) -> list[str]:
    return [t for t in sa.inspect(engine).get_table_names(schema=schema) if "__synth_" in t]


def test_round_trip_keeps_values_nulls_and_types(postgres):
    engine, schema, _ = postgres
    assert sql.write_table(engine, f"{schema}.roundtrip", [_table(), _table()]) == 6
    back = sql.fetch_table(engine, f"{schema}.roundtrip")
    expected = _table().to_pylist()
    assert back.slice(0, 3).to_pylist() == [row | {"code": row["code"]} for row in expected]
    assert pa.types.is_timestamp(back.schema.field("at").type) and pa.types.is_date(back.schema.field("day").type)
    assert sql.count_rows(engine, sql.query_of(f"sql:{schema}.roundtrip")) == 6


def test_replace_is_all_or_nothing(postgres):
    engine, schema, _ = postgres
    name = f"{schema}.atomic"
    sql.write_table(engine, name, [_table()])

    def failing():
        yield _table()
        raise OSError("the disk went away half-way")

    with pytest.raises(OSError):
        sql.write_table(engine, name, failing(), mode="replace")
    assert sql.count_rows(engine, f"SELECT * FROM {name}") == 3  # the old table, untouched
    assert _staging_tables(engine, schema) == []
    sql.write_table(engine, name, [_table().slice(0, 1)], mode="replace")
    assert sql.count_rows(engine, f"SELECT * FROM {name}") == 1


def test_append_adds_rows_and_creates_a_missing_table(postgres):
    engine, schema, _ = postgres
    name = f"{schema}.appended"
    sql.write_table(engine, name, [_table()], mode="append")
    sql.write_table(engine, name, [_table()], mode="append")
    assert sql.count_rows(engine, f"SELECT * FROM {name}") == 6
    assert _staging_tables(engine, schema) == []


def test_read_batches_streams_in_bounded_batches(postgres):
    engine, schema, _ = postgres
    frame = pl.DataFrame({"n": range(2_500), "s": [f"v{i % 7}" for i in range(2_500)]})
    sql.write_table(engine, f"{schema}.big", [frame.to_arrow()])
    sizes = [b.num_rows for b in sql.read_batches(engine, f"SELECT * FROM {schema}.big ORDER BY n", batch_rows=1_000)]
    assert sizes == [1_000, 1_000, 500]


def test_fingerprint_changes_with_the_rows(postgres):
    engine, schema, _ = postgres
    name = f"{schema}.finger"
    sql.write_table(engine, name, [_table()])
    before = sql.query_fingerprint(engine, f"SELECT * FROM {name}")
    sql.write_table(engine, name, [_table()], mode="append")
    assert sql.query_fingerprint(engine, f"SELECT * FROM {name}") != before


def test_sqlite_path_without_copy(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    table = _table().drop_columns(["code"])
    sql.write_table(engine, "t", [table])
    sql.write_table(engine, "t", [table], mode="append")
    assert sql.count_rows(engine, "SELECT * FROM t") == 6


def test_connection_url_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("SYNTH_SQL_URL_FOR_TEST", raising=False)
    with pytest.raises(SourceError, match="SYNTH_SQL_URL_FOR_TEST, which is not set"):
        sql.engine_from_env("SYNTH_SQL_URL_FOR_TEST")


def test_table_names_are_checked_and_queries_recognised():
    assert sql.query_of("sql:warehouse.admissions") == "SELECT * FROM warehouse.admissions"
    assert sql.query_of("sql:SELECT a FROM b WHERE c = 1;") == "SELECT a FROM b WHERE c = 1"
    with pytest.raises(SourceError, match="not a plain table name"):
        sql.write_table(sa.create_engine("sqlite://"), "x; DROP TABLE y", [_table()])


@pytest.mark.e2e
def test_sql_source_to_synthetic_table_round_trip(postgres, diabetes_csv, tmp_path, monkeypatch):
    """A real table in, the generate flow, a synthetic table back in the same database."""
    import json

    from flows.generate import generate
    from flows.parameters import GenerateParameters

    engine, schema, url = postgres
    real = pl.read_csv(diabetes_csv, null_values=["?"], infer_schema_length=None).sample(1_500, seed=8)
    sql.write_table(engine, f"{schema}.admissions", [real.to_arrow()])
    (tmp_path / "config.yaml").write_text(
        "entity_key: patient_nbr\ncolumns: {encounter_id: identifier}\nmodel: {epochs: 3}\n"
        "preprocess: {partition_rows: 1000, workers: 1}\n"
        "evaluation: {sample_rows: 500, distance_rows: 200, propensity_rows: 500, attack_rows: 100, "
        "attack_reference_rows: 1000, utility_rows: 500}\n"
    )
    monkeypatch.setenv("SYNTH_SQL_URL", url)
    params = GenerateParameters(
        source=f"sql:SELECT * FROM {schema}.admissions WHERE admission_type_id IS NOT NULL",
        output=str(tmp_path / "out"),
        config_path=str(tmp_path / "config.yaml"),
        work_dir=str(tmp_path / "work"),
        sql_table=f"{schema}.synthetic_admissions",
    )
    state = generate(params, return_state=True)
    assert state.is_completed(), state.message

    synthetic = sql.fetch_table(engine, f"{schema}.synthetic_admissions")
    expected_rows = sql.count_rows(engine, sql.query_of(params.source))
    assert synthetic.num_rows == expected_rows
    assert synthetic.column_names == real.columns
    real_ids = set(real["encounter_id"].to_list())
    assert not real_ids & set(synthetic["encounter_id"].to_pylist())  # fresh ids, never a real one
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["sinks"] == [
        {"kind": "sql", "table": f"{schema}.synthetic_admissions", "mode": "replace", "rows": expected_rows}
    ]
    assert manifest["source"]["uri"] == params.source


def test_related_tables_are_written_with_their_keys_in_one_transaction(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'related.db'}")
    parents = pa.table({"pid": [1, 2], "age": [40, 50]})
    children = pa.table({"vid": ["a", "b", "c"], "pid": [1, 1, 2]})
    keys = {"patients": "pid", "visits": "vid"}
    links = {"visits": [("pid", "patients", "pid")]}
    rows = sql.write_related_tables(engine, {"patients": [parents], "visits": [children]}, keys, links, "syn_")
    assert rows == {"patients": 2, "visits": 3}
    inspector = sa.inspect(engine)
    assert inspector.get_pk_constraint("syn_visits")["constrained_columns"] == ["vid"]
    [link] = inspector.get_foreign_keys("syn_visits")
    assert (link["constrained_columns"], link["referred_table"], link["referred_columns"]) == (
        ["pid"], "syn_patients", ["pid"])
    # A second write whose last table breaks its primary key changes nothing: one transaction.
    broken = pa.table({"vid": ["x", "x"], "pid": [1, 1]})
    more = pa.table({"pid": [7, 8, 9], "age": [1, 2, 3]})
    with pytest.raises(SourceError):
        sql.write_related_tables(engine, {"patients": [more], "visits": [broken]}, keys, links, "syn_")
    assert sql.fetch_table(engine, "syn_patients").num_rows == 2
    assert sql.fetch_table(engine, "syn_visits").num_rows == 3
    engine.dispose()


def test_related_tables_on_postgresql_keep_keys_types_and_constraints(postgres):
    engine, schema, _ = postgres
    parents = pa.table({"pid": pa.array([10, 11], pa.int64()), "born": pa.array([dt.date(1950, 1, 2), None])})
    children = pa.table({"vid": ["syn-1", "syn-2"], "pid": pa.array([10, 11], pa.int64())})
    tables = {"patients": [parents], "visits": [children]}
    keys, links = {"patients": "pid", "visits": "vid"}, {"visits": [("pid", "patients", "pid")]}
    for _ in range(2):  # a second release replaces the first, constraints and all
        assert sql.write_related_tables(engine, tables, keys, links, "syn_", schema=schema) == {"patients": 2,
                                                                                                 "visits": 2}
    inspector = sa.inspect(engine)
    [link] = inspector.get_foreign_keys("syn_visits", schema=schema)
    assert (link["referred_table"], link["referred_columns"]) == ("syn_patients", ["pid"])
    assert sql.fetch_table(engine, f"{schema}.syn_patients").to_pylist() == parents.to_pylist()
    with engine.begin() as conn, pytest.raises(sa.exc.IntegrityError):  # the database itself refuses an orphan
        conn.execute(sa.text(f"INSERT INTO {schema}.syn_visits VALUES ('syn-3', 99)"))
