"""Tests for synth.demo.mimic: the MIMIC-III demo extract and its builder."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from synth.config import ColumnKind, load_config
from synth.demo import mimic
from synth.errors import SourceError
from synth.schema import infer_schema

CONFIG_PATH = Path(mimic.__file__).with_name("mimic3.yaml")

EXPECTED_TYPES = {
    "subject_id": pa.int64(),
    "hadm_id": pa.int64(),
    "icustay_id": pa.int64(),
    "age": pa.int64(),
    "los": pa.float64(),
    "value": pa.float64(),
    **{name: pa.timestamp("us") for name in ("dob", "dod", "admittime", "dischtime", "deathtime")},
    **{name: pa.timestamp("us") for name in ("intime", "outtime", "charttime")},
}


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return mimic.build_episode_table(mimic.DEMO_DATA_DIR)


def _copy_tables(target: Path, skip: str | None = None) -> Path:
    for name in mimic.TABLES:
        if name != skip:
            shutil.copy(mimic.DEMO_DATA_DIR / f"{name}.csv", target / f"{name}.csv")
    return target


def test_columns_and_types(table):
    assert table.column_names == list(mimic.COLUMNS)
    for name in table.column_names:
        expected = EXPECTED_TYPES.get(name)
        actual = table.schema.field(name).type
        if expected is None:
            assert pa.types.is_string(actual) or pa.types.is_large_string(actual), name
        else:
            assert actual == expected, name


def test_grain_several_rows_per_patient(table):
    per_subject = pc.value_counts(table["subject_id"])
    counts = per_subject.field("counts").to_pylist()
    # 3 of the demo's 100 patients have no ICU output event and so no row.
    assert len(counts) == 97
    assert max(counts) > 1
    assert 1_000 < table.num_rows <= 15_000


def test_real_missing_values_and_no_missing_keys(table):
    for name in mimic.MISSING_IN_DEMO:
        assert table[name].null_count > 0, name
    for name in ("subject_id", "hadm_id", "icustay_id", "admittime", "dischtime", "charttime", "age"):
        assert table[name].null_count == 0, name


def test_times_are_consistent_and_ages_top_coded(table):
    assert pc.all(pc.less_equal(table["admittime"], table["dischtime"])).as_py()
    assert pc.all(pc.less_equal(table["intime"], table["outtime"])).as_py()
    assert pc.min(table["age"]).as_py() >= 0
    assert pc.max(table["age"]).as_py() == mimic.AGE_TOP_CODE  # the demo has patients over 89


def test_sorted_and_deterministic(table):
    again = mimic.build_episode_table(mimic.DEMO_DATA_DIR)
    assert again.equals(table)
    keys = [(name, "ascending") for name in ("subject_id", "hadm_id", "icustay_id", "charttime")]
    order = pc.sort_indices(table, sort_keys=keys).to_pylist()
    assert order == sorted(order)


def test_full_mimic_layout_gives_the_same_table(tmp_path, table):
    # Full MIMIC-III ships upper-case headers in gzipped CSVs.
    for name in mimic.TABLES:
        lines = (mimic.DEMO_DATA_DIR / f"{name}.csv").read_text(encoding="utf-8").splitlines(keepends=True)
        with gzip.open(tmp_path / f"{name}.csv.gz", "wt", encoding="utf-8") as out:
            out.write(lines[0].upper())
            out.writelines(lines[1:])
    assert mimic.build_episode_table(tmp_path).equals(table)


def test_event_cap_keeps_the_first_events_of_each_stay(table):
    capped = mimic.build_episode_table(mimic.DEMO_DATA_DIR, max_events_per_stay=5)
    # Each stay's rows are contiguous and in chart-time order in the full table.
    expected = pl.from_arrow(table).group_by("icustay_id", maintain_order=True).head(5)
    assert capped.equals(expected.select(mimic.COLUMNS).to_arrow())
    assert 1 < capped.num_rows < table.num_rows


def test_missing_table_names_file_and_folder(tmp_path):
    folder = _copy_tables(tmp_path, skip="ICUSTAYS")
    with pytest.raises(SourceError, match="ICUSTAYS") as caught:
        mimic.build_episode_table(folder)
    assert str(folder) in str(caught.value)


def test_missing_column_names_column_and_file(tmp_path):
    folder = _copy_tables(tmp_path)
    patients = (folder / "PATIENTS.csv").read_text(encoding="utf-8")
    (folder / "PATIENTS.csv").write_text(patients.replace(",gender,", ",sex,", 1), encoding="utf-8")
    with pytest.raises(SourceError, match=r"PATIENTS\.csv .*gender"):
        mimic.build_episode_table(folder)


def test_unparseable_date_is_a_source_error(tmp_path):
    # e.g. a copy re-saved through a spreadsheet, which rewrites dates as m/d/yy
    folder = _copy_tables(tmp_path)
    admissions = (folder / "ADMISSIONS.csv").read_text(encoding="utf-8")
    (folder / "ADMISSIONS.csv").write_text(admissions.replace("2164-10-23 21:09:00", "10/23/64", 1), encoding="utf-8")
    with pytest.raises(SourceError, match="admittime"):
        mimic.build_episode_table(folder)


def test_missing_folder_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        mimic.build_episode_table(tmp_path / "nowhere")


def test_write_episode_table_round_trips(tmp_path, table):
    out = mimic.write_episode_table(mimic.DEMO_DATA_DIR, tmp_path / "out" / "mimic3_demo.parquet")
    assert out.is_file()
    assert pq.read_table(out).equals(table)


def test_config_sets_patient_key_and_identifiers(table):
    schema = infer_schema(table, load_config(CONFIG_PATH))
    assert schema.entity_key == "subject_id"
    assert schema["hadm_id"].kind is ColumnKind.IDENTIFIER
    assert schema["icustay_id"].kind is ColumnKind.IDENTIFIER
    assert schema["label"].kind is ColumnKind.CATEGORICAL
    assert schema["age"].kind is ColumnKind.NUMERICAL
    assert schema["admittime"].kind is ColumnKind.DATETIME


def test_shipped_files_match_the_release_checksums():
    # The release's own SHA256SUMS.txt values, as listed in data/mimic3_demo/README.md.
    official = {
        "PATIENTS.csv": "f65803a46bcb88127574bfd0b70d78d4123783d05bb411e70d4c9629edd7b703",
        "ADMISSIONS.csv": "487e0b87cc81472cc2eb9ee911b3493c39e15d32e8230cec559907060c009b1c",
        "ICUSTAYS.csv": "455cd8fd014bd75d9d26ddf8cb116c77ecccee2fe35fea342801a631d94b387b",
        "OUTPUTEVENTS.csv": "f8819ce33479da16b72c4e785ada17341e22ec9217d07bd5de94f1d09429f389",
        "D_ITEMS.csv": "b4642d6d278987b5fb96c790bca02058c5f070accfa58c249100bda38a608089",
    }
    for name, digest in official.items():
        assert hashlib.sha256((mimic.DEMO_DATA_DIR / name).read_bytes()).hexdigest() == digest, name
