"""Column names as extracts arrive: the row index pandas and R write out, unnamed columns, odd names."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synth.config import parse_config
from synth.expectations import ExpectationCrashed, validate_table
from synth.io.columns import is_unnamed
from synth.io.sources import read_table
from tests.conftest import HEART_CSV


@pytest.fixture(scope="module")
def heart() -> pd.DataFrame:
    return pd.read_csv(HEART_CSV)


def _read(path, **source):
    notes: list[str] = []
    table = read_table(path, parse_config({"source": source}) if source else None, log=notes.append)
    return table, notes


def test_pandas_to_csv_index_is_dropped_with_one_line(heart, tmp_path):
    path = tmp_path / "heart.csv"
    heart.to_csv(path)  # header ",site,age,...", rows "0,...", "1,..."
    assert path.read_text().startswith(",site,age,")
    table, notes = _read(path)
    assert table.column_names == list(heart.columns)
    assert table.num_rows == len(heart)
    assert len(notes) == 1 and "column 0 (empty header) holds row numbers" in notes[0]
    assert "source.row_index: keep" in notes[0]


def test_r_write_csv_index_is_dropped(tmp_path):
    path = tmp_path / "r.csv"  # what R's write.csv writes: quoted names, row names "1".."n"
    path.write_text('"","age","death","sex"\n"1",62,0,"male"\n"2",60,1,"female"\n"3",52,0,"female"\n')
    table, notes = _read(path)
    assert table.column_names == ["age", "death", "sex"]
    assert table["age"].to_pylist() == [62, 60, 52]
    assert len(notes) == 1


def test_rdatasets_rownames_and_a_filtered_frames_index_are_dropped(heart, tmp_path):
    rownames = tmp_path / "rownames.csv"
    heart.head(50).rename_axis("rownames").to_csv(rownames)
    filtered = tmp_path / "filtered.csv"
    heart[heart["age"] > 50].to_csv(filtered)  # index 3, 4, 7, ...: increasing with gaps
    for path in (rownames, filtered):
        table, notes = _read(path)
        assert table.column_names == list(heart.columns), path
        assert len(notes) == 1


def test_keep_row_index_names_it_instead(heart, tmp_path):
    path = tmp_path / "heart.csv"
    heart.to_csv(path)
    table, notes = _read(path, row_index="keep")
    assert table.column_names == ["unnamed_0", *heart.columns]
    assert table["unnamed_0"].to_pylist()[:3] == [0, 1, 2]
    assert len(notes) == 1 and notes[0].endswith("column 0 (empty header) has no name: called it 'unnamed_0'")


def test_unnamed_columns_holding_data_get_stable_stated_names(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text(",age,,unnamed_2\nb,40,x,1\na,41,y,2\nc,42,z,3\n")
    table, notes = _read(path)
    # unnamed_2 is taken by a real column, so the third column's stated name steps aside.
    assert table.column_names == ["unnamed_0", "age", "unnamed_2_", "unnamed_2"]
    assert table["unnamed_0"].to_pylist() == ["b", "a", "c"]
    assert len(notes) == 2 and all("has no name" in n for n in notes)
    again, _ = _read(path)
    assert again.column_names == table.column_names  # the same name every time


def test_integers_that_are_not_row_numbers_are_kept(tmp_path):
    path = tmp_path / "codes.csv"
    path.write_text(",age\n5,40\n2,41\n9,42\n")  # not increasing: data, not an index
    table, _ = _read(path)
    assert table.column_names == ["unnamed_0", "age"]


def test_parquet_index_from_pandas_is_dropped_in_every_part(heart, tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    heart[heart["site"] == "cleveland"].to_parquet(folder / "a.parquet")  # index 0..302 stored as a column
    heart[heart["site"] != "cleveland"].to_parquet(folder / "b.parquet")  # 303..919
    assert "__index_level_0__" in pq.read_schema(folder / "b.parquet").names
    table, notes = _read(folder)
    assert table.column_names == list(heart.columns) and table.num_rows == len(heart)
    assert "__index_level_0__" in notes[0]
    assert read_table(folder, columns=["age"]).column_names == ["age"]


@pytest.mark.parametrize("name", ["", " ", "Unnamed: 0", "...1", "_duplicated_0"])
def test_what_counts_as_no_name(name):
    assert is_unnamed(name)


@pytest.mark.parametrize("name", ["age", "rownames", "unnamed_0", "X"])
def test_real_names_are_names(name):
    assert not is_unnamed(name)


def test_the_gx_gate_takes_any_column_name():
    names = ["", " ", "a b", "a.b", "ünï", "Unnamed: 0", "x[0]", "$col", "a'b", 'a"b', "1", "None", "c0", "c1"]
    table = pa.table({n: pa.array([1, 2, 3]) for n in names})
    expectations = []
    for n in names:
        expectations += [
            {"type": "expect_column_to_exist", "kwargs": {"column": n}},
            {"type": "expect_column_values_to_be_between", "kwargs": {"column": n, "min_value": 0, "max_value": 5}},
            {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": n, "value_set": [1, 2]}},
        ]
    outcomes, full = validate_table(table, expectations)
    assert len(outcomes) == 3 * len(names)
    assert {o.column for o in outcomes} == set(names)  # reported under the real names, not GX's aliases
    in_set = [o for o in outcomes if o.expectation == "expect_column_values_to_be_in_set"]
    assert all(o.unexpected_count == 1 and o.element_count == 3 for o in in_set)
    assert all(o.success for o in outcomes if o.expectation != "expect_column_values_to_be_in_set")
    assert set(full["synth_column_aliases"].values()) == set(names)


def test_a_missing_column_fails_as_missing_not_as_a_crash():
    table = pa.table({"a": [1, 2]})
    outcomes, _ = validate_table(
        table, [{"type": "expect_column_values_to_be_between", "kwargs": {"column": "b", "min_value": 0}}]
    )
    assert not outcomes[0].success and outcomes[0].detail == "column 'b' is missing from the partition"


def test_an_exception_inside_an_expectation_is_raised_as_a_bug_without_values():
    table = pa.table({"s": ["Alice Secret", "Bob", None]})
    with pytest.raises(ExpectationCrashed) as crash:
        validate_table(table, [{"type": "expect_column_mean_to_be_between", "kwargs": {"column": "s", "min_value": 0}}])
    message = str(crash.value)
    assert "expect_column_mean_to_be_between on column 's'" in message and "bug" in message
    assert "Alice" not in message  # names the exception type only; the traceback stays in the work folder
    assert crash.value.result["success"] is False
