"""Reading a relational extract: each table from its own kind of source, keys inferred and said."""

from __future__ import annotations

import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from synth.config import load_config
from synth.errors import SourceError
from synth.relational.output import read_tables as read_folder
from synth.relational.output import write_tables
from synth.relational.sources import check_sources, read_tables, tables_fingerprint
from tests.relational_tables import three_level


@pytest.fixture()
def extract(tmp_path, monkeypatch):
    """patients in SQLite, visits as a folder of Parquet parts, labs as CSV; only one key declared."""
    tables, _ = three_level(n_patients=60)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    tables["patients"].to_pandas().to_sql("patients", engine, index=False)
    engine.dispose()
    monkeypatch.setenv("SYNTH_SQL_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    (tmp_path / "visits").mkdir()
    pq.write_table(tables["visits"].slice(0, 50), tmp_path / "visits" / "a.parquet")
    pq.write_table(tables["visits"].slice(50), tmp_path / "visits" / "b.parquet")
    pcsv.write_csv(tables["labs"], tmp_path / "labs.csv")
    config = tmp_path / "extract.yaml"
    config.write_text("tables:\n  patients: {source: 'sql:patients'}\n  visits: {source: visits}\n"
                      "  labs: {source: labs.csv, foreign_keys: {visit_id: visits.visit_id}}\n")
    return tables, load_config(config)


def test_each_source_kind_is_read_and_the_obvious_keys_inferred(extract):
    real, config = extract
    said = []
    tables, schema, inferred = read_tables(config, said.append)
    assert {n: t.num_rows for n, t in tables.items()} == {n: t.num_rows for n, t in real.items()}
    assert tables["patients"].schema.field("registered").type.unit == "us"  # SQLite's text dates parsed
    assert schema.order == ("patients", "visits", "labs")
    assert [str(r) for r in schema.relations] == ["visits.patient_id -> patients.patient_id",
                                                  "labs.visit_id -> visits.visit_id"]
    assert "visits.patient_id -> patients.patient_id is a foreign key: same name, every value found in " \
           "'patients'" in inferred
    assert set(inferred) <= set(said)  # every inference is in the log too
    check_sources(config)
    assert len(tables_fingerprint(config)) == 64


def test_a_missing_table_file_is_named(extract, tmp_path):
    _, config = extract
    (tmp_path / "labs.csv").unlink()
    with pytest.raises(SourceError, match="table 'labs': source not found"):
        check_sources(config)
    with pytest.raises(SourceError, match="table 'labs'"):
        read_tables(config)


def test_tables_round_trip_through_their_folders(tmp_path):
    tables, _ = three_level(n_patients=30)
    assert write_tables(tables, tmp_path, chunk_rows=40) == {n: t.num_rows for n, t in tables.items()}
    assert len(list((tmp_path / "labs").glob("part-*.parquet"))) > 1
    back = read_folder(tmp_path, list(tables))
    assert all(back[n].equals(t) for n, t in tables.items())
    write_tables({"labs": tables["labs"].slice(0, 10)}, tmp_path, chunk_rows=40)  # a rewrite leaves no old part
    assert read_folder(tmp_path, ["labs"])["labs"].num_rows == 10
