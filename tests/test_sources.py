"""Reading extracts: CSV, Parquet files, folders and globs; clear errors for bad paths."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synth.config import parse_config
from synth.errors import SourceError
from synth.io.sources import read_table


def test_diabetes_csv_reads_question_marks_as_missing_and_keeps_none_as_a_category(diabetes_csv):
    table = read_table(diabetes_csv, parse_config({"source": {"na_values": ["?"]}}))
    assert table.num_rows == 10_000 and table.num_columns == 50
    assert table["weight"].null_count == 9_725
    glucose = table["max_glu_serum"].to_pylist()
    assert glucose.count("None") == 9_115  # "not measured", a real category, not a null
    # ICD-9 codes turn to text after the first rows ("V57"): whole-file inference keeps them text.
    assert pa.types.is_large_string(table["diag_1"].type) or pa.types.is_string(table["diag_1"].type)


def test_ids_declared_as_identifiers_are_read_as_text_and_dates_parsed(appointments_csv):
    first = appointments_csv.read_text().splitlines()[1].split(",")
    table = read_table(appointments_csv, parse_config({"columns": {"PatientId": "identifier"}}))
    assert pa.types.is_large_string(table["PatientId"].type) or pa.types.is_string(table["PatientId"].type)
    assert table["PatientId"][0].as_py() == first[0]  # the digits as written, never through a float
    for name in ("ScheduledDay", "AppointmentDay"):
        assert table[name].type == pa.timestamp("us", tz="UTC")  # "...Z" is UTC
        assert table[name].null_count == 0  # every value parsed, none lost
    assert table["ScheduledDay"][0].as_py().isoformat().replace("+00:00", "Z") == first[3]


def test_a_date_column_with_a_stray_value_stays_text_and_a_wrong_format_is_an_error(tmp_path):
    path = _write(tmp_path / "d.csv", "a,b\n2020-01-02,02/01/2020\nunknown,03/01/2020\n")
    table = read_table(path)
    assert pa.types.is_large_string(table["a"].type) or pa.types.is_string(table["a"].type)
    assert table["a"].to_pylist() == ["2020-01-02", "unknown"]
    parsed = read_table(path, parse_config({"columns": {"b": {"datetime_format": "%d/%m/%Y"}}}))
    assert parsed["b"].to_pylist()[1].month == 1 and parsed["b"].to_pylist()[1].day == 3
    with pytest.raises(SourceError, match="column 'b': 2 of 2 values do not match datetime_format"):
        read_table(path, parse_config({"columns": {"b": {"datetime_format": "%Y-%m-%d"}}}))


def test_parquet_file_folder_and_glob_give_the_same_rows(tmp_path):
    parts = [pa.table({"a": [1, 2], "b": ["x", "y"]}), pa.table({"a": [3], "b": ["z"]})]
    folder = tmp_path / "extract"
    folder.mkdir()
    for i, part in enumerate(parts):
        pq.write_table(part, folder / f"part-{i}.parquet")
    whole = pa.concat_tables(parts)
    assert read_table(folder).equals(whole)
    assert read_table(str(folder / "*.parquet")).equals(whole)
    assert read_table(folder / "part-1.parquet").equals(parts[1])
    assert read_table(folder, columns=["b"]).column_names == ["b"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.csv", "source not found"),
        (lambda p: str(p / "nothing-*.parquet"), "no files match"),
        (lambda p: p, "a folder with no .parquet files"),
        (lambda p: _write(p / "data.xlsx", "x"), "cannot tell the format"),
        (lambda p: _write(p / "empty.csv", ""), "empty"),
        (lambda p: _write(p / "header.csv", "a,b\n"), r"has a header \(2 columns\) but no rows"),
        (lambda p: _write(p / "broken.parquet", "not parquet"), "cannot read Parquet"),
    ],
)
def test_bad_sources_give_a_clear_error(tmp_path, make, message):
    with pytest.raises(SourceError, match=message):
        read_table(make(tmp_path))


def test_requesting_absent_columns_names_them(tmp_path):
    path = _write(tmp_path / "t.csv", "a,b\n1,2\n")
    with pytest.raises(SourceError, match=r"columns \['c'\] are not in the extract"):
        read_table(path, columns=["a", "c"])


def _write(path, text):
    path.write_text(text)
    return path
