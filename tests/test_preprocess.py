"""Tests for synth.preprocess: partitions on a real Dask cluster, the clean dataset, samples."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from synth.config import ColumnKind, PipelineConfig
from synth.errors import SchemaError
from synth.preprocess import preprocess, read_split, training_sample
from synth.preprocess.partition_work import SAMPLE_KEY, merge_samples
from synth.preprocess.partitions import plan_files

ROWS = 3_000


def _config(**extra) -> PipelineConfig:
    data = {
        "seed": 3,
        "source": {"na_values": ["?"]},
        "entity_key": "patient_nbr",
        "columns": {"encounter_id": "identifier"},
        "preprocess": {"partition_rows": 1_000, "workers": 2},
        "transforms": {"fit_sample_rows": 1_000},
    }
    return PipelineConfig.model_validate(data | extra)


@pytest.fixture(scope="module")
def diabetes_rows(diabetes_csv) -> pl.DataFrame:
    frame = pl.read_csv(diabetes_csv, null_values=["?"], infer_schema_length=None)
    return frame.sample(ROWS, seed=11)


@pytest.fixture(scope="module")
def partitioned(diabetes_rows, tmp_path_factory) -> Path:
    """3,000 diabetes rows as three Parquet files of two row groups each."""
    folder = tmp_path_factory.mktemp("extract")
    for k in range(3):
        part = diabetes_rows.slice(k * 1_000, 1_000).to_arrow()
        pq.write_table(part, folder / f"month={k}.parquet", row_group_size=500)
    return folder


@pytest.fixture(scope="module")
def prepared(partitioned, tmp_path_factory):
    work = tmp_path_factory.mktemp("work")
    return preprocess(str(partitioned), _config(), work, log=lambda _: None)


def test_row_groups_are_grouped_never_split(partitioned):
    partitions = plan_files(sorted(str(p) for p in partitioned.glob("*.parquet")), partition_rows=600)
    assert [p.row_groups for p in partitions] == [(0, 1)] * 3
    assert [p.index for p in partitions] == [0, 1, 2]
    assert sum(p.rows for p in partitions) == ROWS


def test_partitions_ran_on_two_worker_processes(prepared):
    reports = [json.loads(p.read_text()) for p in sorted(Path(prepared.clean_dir, "_parts").glob("*.json"))]
    workers = {r["worker"] for r in reports}
    assert len(reports) == 3
    assert len(workers) == 2
    assert f":{os.getpid()}" not in " ".join(workers)  # not the test's own process
    # each worker timed its partition and the GX validation in it; the run sums them (its log states the share)
    assert all(0 < r["validation_seconds"] < r["seconds"] for r in reports)
    assert prepared.partition_seconds == pytest.approx(sum(r["seconds"] for r in reports))
    assert prepared.validation_seconds == pytest.approx(sum(r["validation_seconds"] for r in reports))


def test_clean_dataset_holds_every_row_split_by_patient(prepared, diabetes_rows):
    train, holdout = read_split(prepared.clean_dir)
    assert prepared.rows == ROWS == train.num_rows + holdout.num_rows
    assert (prepared.train_rows, prepared.holdout_rows) == (train.num_rows, holdout.num_rows)
    assert 0.1 < holdout.num_rows / ROWS < 0.3  # holdout_fraction 0.2, drawn per patient
    shared = set(train["patient_nbr"].to_pylist()) & set(holdout["patient_nbr"].to_pylist())
    assert not shared
    real_ids = sorted(diabetes_rows["encounter_id"].to_list())
    assert sorted(train["encounter_id"].to_pylist() + holdout["encounter_id"].to_pylist()) == real_ids


def test_schema_and_types_come_from_the_sample(prepared):
    schema = prepared.schema
    assert schema.entity_key == "patient_nbr"
    assert schema["encounter_id"].kind is ColumnKind.IDENTIFIER
    assert schema["race"].kind is ColumnKind.CATEGORICAL
    train, _ = read_split(prepared.clean_dir)
    assert train.schema == schema.arrow_schema()


def test_good_extract_passes_the_gate_and_writes_reports_to_the_work_folder(prepared):
    assert prepared.gate.success, prepared.gate.summary()
    assert prepared.gate.partitions_validated == 3
    work = Path(prepared.clean_dir).parent
    stats = json.loads((work / "stats.json").read_text())
    assert stats["rows"] == ROWS
    assert stats["columns"]["num_lab_procedures"]["count"] == ROWS
    assert "passed" in Path(prepared.report_path).read_text()


def test_rerun_skips_partitions_already_clean(prepared, partitioned):
    work = Path(prepared.clean_dir).parent
    part = Path(prepared.clean_dir) / "train" / "part-00001.parquet"
    before = part.stat().st_mtime_ns
    lines: list[str] = []
    again = preprocess(str(partitioned), _config(), work, log=lines.append)
    assert part.stat().st_mtime_ns == before
    assert any("3 partitions already clean" in line for line in lines)
    assert again.version == prepared.version and again.rows == prepared.rows


def test_training_sample_is_bounded_seeded_and_uniform(prepared):
    sample = training_sample(prepared.clean_dir, 500, seed=1)
    again = training_sample(prepared.clean_dir, 500, seed=1)
    other = training_sample(prepared.clean_dir, 500, seed=2)
    assert 450 <= sample.num_rows <= 500  # whole patients: at most the limit
    assert sample.equals(again)
    assert not sample.equals(other)
    train, _ = read_split(prepared.clean_dir)
    assert training_sample(prepared.clean_dir, 10**9, seed=1).num_rows == train.num_rows


def test_bounded_sample_keeps_the_smallest_keys_over_partitions():
    a = pa.table({"x": [1, 2, 3], SAMPLE_KEY: [0.9, 0.1, 0.5]})
    b = pa.table({"x": [4, 5], SAMPLE_KEY: [0.2, 0.8]})
    merged = merge_samples([a, b], 3, pa.schema([("x", pa.int64())]))
    assert sorted(merged["x"].to_pylist()) == [2, 3, 4]
    assert merged.column_names == ["x"]


def test_csv_source_is_staged_as_parquet_partitions(diabetes_rows, tmp_path):
    csv = tmp_path / "extract.csv"
    diabetes_rows.head(1_500).write_csv(csv, null_value="?")
    prepared = preprocess(str(csv), _config(), tmp_path / "work", workers=1, log=lambda _: None)
    assert prepared.partitions == 2 and prepared.rows == 1_500
    assert len(list((tmp_path / "work" / "raw").glob("*.parquet"))) == 2


def test_conflicting_partition_types_name_both_files(tmp_path):
    pq.write_table(pa.table({"a": [1, 2] * 10, "b": ["x", "y"] * 10}), tmp_path / "p0.parquet")
    pq.write_table(pa.table({"a": ["one", "two"] * 10, "b": ["x", "z"] * 10}), tmp_path / "p1.parquet")
    with pytest.raises(SchemaError, match=r"'a' is int64 in .*p0\.parquet but string in .*p1\.parquet"):
        preprocess(str(tmp_path), PipelineConfig(), tmp_path / "work", workers=1, log=lambda _: None)


def test_dates_in_text_become_datetimes(tmp_path):
    dates = [f"2024-01-{d:02d} 10:00:00" for d in range(1, 29)] * 40
    table = pa.table({"when": dates, "value": np.arange(len(dates), dtype=np.float64), "code": ["a", "b"] * 560})
    pq.write_table(table, tmp_path / "x.parquet")
    prepared = preprocess(
        str(tmp_path / "x.parquet"), PipelineConfig(), tmp_path / "work", workers=1, log=lambda _: None
    )
    train, holdout = read_split(prepared.clean_dir)
    assert prepared.schema["when"].kind is ColumnKind.DATETIME
    assert pa.types.is_timestamp(train.schema.field("when").type)
    assert pc.min(train["when"]).as_py().year == 2024
    assert train.num_rows + holdout.num_rows == len(dates)


def test_training_sample_keeps_patients_whole(prepared):
    sample = training_sample(prepared.clean_dir, 800, seed=4)  # the dataset's patient key: whole patients
    train, _ = read_split(prepared.clean_dir)
    assert 700 <= sample.num_rows <= 800
    counts = pl.from_arrow(train).group_by("patient_nbr").len()
    kept = pl.from_arrow(sample).group_by("patient_nbr").len()
    assert kept.join(counts, on="patient_nbr").filter(pl.col("len") != pl.col("len_right")).height == 0


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_written_out_row_index_is_dropped_and_unnamed_columns_named_before_the_gate(fmt, tmp_path):
    """The R/pandas CSV shape (``,age,...``) and pandas' Parquet index: the GX gate sees stated names only."""
    import pandas as pd

    from tests.conftest import HEART_CSV

    frame = pd.read_csv(HEART_CSV)
    frame.insert(3, "", frame["site"].str.upper())  # an unnamed column that holds data
    frame = frame[frame["age"] > 40]  # a filtered frame: its index has gaps
    source = tmp_path / f"heart.{fmt}"
    frame.to_csv(source) if fmt == "csv" else frame.to_parquet(source)
    lines: list[str] = []
    prepared = preprocess(
        str(source), PipelineConfig.model_validate({"preprocess": {"workers": 1}}), tmp_path / "work", log=lines.append
    )
    assert prepared.gate.success, prepared.gate.summary()
    stated = "unnamed_4" if fmt == "csv" else "unnamed_3"  # its position in the file: CSV writes the index first
    assert prepared.schema.names == ["site", "age", "sex", stated, *frame.columns[4:]]
    assert prepared.schema[stated].kind is ColumnKind.CATEGORICAL
    assert prepared.rows == len(frame)
    assert sum("holds row numbers" in line for line in lines) == 1
    assert sum(f"called it {stated!r}" in line for line in lines) == 1


def test_a_column_with_no_value_in_any_row_is_kept_as_empty_text(tmp_path):
    """A SQL query or pandas types such a column ``null``: it stays a column (all missing), with one log line."""
    source = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": list(range(60)), "b": ["x", "y", "z"] * 20, "empty": pa.nulls(60)}), source)
    lines: list[str] = []
    prepared = preprocess(
        str(source), PipelineConfig.model_validate({"preprocess": {"workers": 1}}), tmp_path / "work", log=lines.append
    )
    assert prepared.gate.success
    assert prepared.schema.names == ["a", "b", "empty"]
    assert pa.types.is_string(prepared.schema["empty"].arrow) or pa.types.is_large_string(prepared.schema["empty"].arrow)
    assert "column 'empty' has no value in any row: kept as an empty text column" in lines
