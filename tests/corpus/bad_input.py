"""Broken and odd extracts and configs, each with the outcome it must produce (docs/bad-input.md).

Three tables, one per way in:

* :data:`EXTRACTS`: files the pipeline reads. Each is prepared (``synth.preprocess``, the
  flow's data path) and gives either a definite error (a :class:`~synth.errors.SynthError`,
  which the CLI prints as one line with exit status 1) whose message matches ``error``, or,
  for a tolerated oddity, a clean dataset that passes the validation gate and a log line
  matching ``log`` that says what was assumed.
* :data:`COMMANDS`: command lines the CLI refuses before any flow starts (paths, config,
  flags, the output folder): exit status 1, one line matching ``error``, no traceback,
  nothing written.
* The runs of whole flows (a data error found inside the flow, a full disk, every tolerated
  oddity at once) live in ``tests/test_bad_input.py``: they cost seconds each.

Every case states its ``decision``: the outcome and why, as a demanding user would want it.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROWS = 300  # enough for every check (the pipeline needs 20), small enough to prepare in a fraction of a second


@dataclass(frozen=True)
class Extract:
    """A source the pipeline reads, and its outcome."""

    name: str
    make: Callable[[Path], Path]  # writes the source under the folder given; returns its path
    decision: str
    error: str | None = None  # regex of the error's one line (a definite error)
    log: str | None = None  # regex of the log line saying what was assumed (a tolerated oddity)
    gate: str | None = None  # regex of the validation gate's failure (refused by the gate, exit 1)
    config: dict = field(default_factory=dict)
    columns: tuple[str, ...] | None = None  # the columns the clean dataset must have, when that is the point
    kinds: dict[str, str] = field(default_factory=dict)  # column kinds the schema must give, when that is the point
    values: dict[str, set] = field(default_factory=dict)  # the values a clean column must hold, when that is the point


@dataclass(frozen=True)
class Command:
    """A ``synth`` command line refused before any flow starts."""

    name: str
    args: Callable[[Path], list[str]]  # the arguments, given a scratch folder (with extract.csv in it)
    decision: str
    error: str


# -- building blocks ------------------------------------------------------------------------------
def base(rows: int = ROWS, seed: int = 0) -> dict[str, list]:
    """A small clean table: an age, a sex, a BMI and a ward per row."""
    rng = np.random.default_rng(seed)
    return {
        "age": rng.integers(20, 90, rows).tolist(),
        "sex": rng.choice(["F", "M"], rows).tolist(),
        "bmi": np.round(rng.normal(27, 4, rows), 1).tolist(),
        "ward": rng.choice(["a", "b", "c", "d"], rows).tolist(),
    }


def with_column(name: str, values: list, rows: int = ROWS) -> dict[str, list]:
    return {**base(rows), name: values}


def csv_text(columns: dict[str, list], separator: str = ",", newline: str = "\n") -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=separator, lineterminator=newline)
    writer.writerow(columns)
    writer.writerows(zip(*columns.values(), strict=True))
    return out.getvalue()


def write_csv(name: str, columns: dict[str, list] | None = None, separator: str = ",", newline: str = "\n",
              encoding: str = "utf-8", prefix: str = "") -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        path.write_bytes((prefix + csv_text(columns or base(), separator, newline)).encode(encoding))
        return path

    return make


def write_bytes(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        (folder / name).write_bytes(data)
        return folder / name

    return make


def write_parquet(name: str, table: Callable[[], pa.Table]) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        pq.write_table(table(), folder / name)
        return folder / name

    return make


def write_partitions(*tables: Callable[[], pa.Table]) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        extract = folder / "extract"
        extract.mkdir()
        for k, table in enumerate(tables):
            pq.write_table(table(), extract / f"p{k}.parquet")
        return extract

    return make


def damaged_parquet(cut: bool) -> Callable[[Path], Path]:
    """A Parquet file cut in half (no footer), or with its first data page overwritten (footer intact)."""

    def make(folder: Path) -> Path:
        good = folder / "good.parquet"
        pq.write_table(pa.table(base()), good)
        data = bytearray(good.read_bytes())
        if cut:
            data = data[: len(data) // 2]
        else:
            page = pq.ParquetFile(good).metadata.row_group(0).column(0).data_page_offset
            data[page + 16 : page + 80] = b"\xff" * 64
        path = folder / ("cut.parquet" if cut else "corrupt.parquet")
        path.write_bytes(bytes(data))
        return path

    return make


def folder_without_data(folder: Path) -> Path:
    extract = folder / "extract"
    extract.mkdir()
    (extract / "README.txt").write_text("monthly extract, see the data dictionary\n")
    return extract


def _ragged() -> str:
    return csv_text(base()) + "41,F,25.0,a,extra,fields\n"


def _every(step: int, values: list, odd) -> list:
    return [odd if i % step == 0 else v for i, v in enumerate(values)]


def _non_finite() -> list:
    """BMI with NaN in rows 0-9, +inf in rows 10-14, -inf in rows 15-19 (20 values that are not numbers)."""
    values = base()["bmi"]
    return ["NaN"] * 10 + ["inf"] * 5 + ["-inf"] * 5 + values[20:]


def _non_finite_parquet() -> pa.Table:
    columns = base()
    columns["bmi"] = [float("nan")] * 10 + [float("inf")] * 5 + [float("-inf")] * 5 + columns["bmi"][20:]
    return pa.table(columns)


def _dates(odd: str | None) -> list:
    dates = [f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in range(ROWS)]
    if odd is not None:
        dates[3] = odd
    return dates


def _duplicate_names() -> pa.Table:
    columns = base()
    return pa.Table.from_arrays(
        [pa.array(columns["age"]), pa.array(columns["sex"]), pa.array(columns["age"])], names=["age", "sex", "age"]
    )


def _encounters() -> dict[str, list]:
    encounters = [500_000 + i for i in range(ROWS)]
    encounters[10] = encounters[9]
    return {**base(), "patient_id": [1_000 + i // 3 for i in range(ROWS)], "encounter_id": encounters}


def _pandas_csv(folder: Path) -> Path:
    import pandas as pd

    path = folder / "pandas.csv"
    pd.DataFrame(base()).to_csv(path)  # the row index first, under an empty header
    return path


def _latin1_ward() -> dict[str, list]:
    return with_column("ward", ["Müller" if i % 7 == 0 else "Schön" for i in range(ROWS)])


# -- extracts ----------------------------------------------------------------------------------------
NA = "n/a"
EXTRACTS: list[Extract] = [
    # Files that hold no data.
    Extract("empty_file", write_bytes("empty.csv", b""), error=r"empty\.csv: the file is empty \(0 bytes\)",
            decision="error: nothing to read; the message names the file"),
    Extract("blank_lines_only", write_bytes("blank.csv", b"\n\n\r\n"),
            error=r"blank\.csv: the file is empty \(blank lines only\)",
            decision="error: as an empty file"),
    Extract("header_only", write_bytes("header.csv", b"age,sex,bmi,ward\n"),
            error=r"header\.csv: the file has a header \(4 columns\) but no rows",
            decision="error: a header without rows is an export that stopped early"),
    Extract("one_row", write_csv("one.csv", base(rows=1)),
            error=r"one\.csv: 1 row; at least 20 are needed",
            decision="error: a model cannot be trained, nor rows held out for the privacy checks, on one row"),
    Extract("nineteen_rows", write_csv("few.csv", base(rows=19)),
            error=r"few\.csv: 19 rows; at least 20 are needed",
            decision="error: below the floor of 20 rows (under it, the transforms and the evaluation's splits fail)"),
    Extract("zero_row_parquet", write_parquet("zero.parquet", lambda: pa.table(base()).slice(0, 0)),
            error=r"zero\.parquet: the file has no rows",
            decision="error: as a CSV header without rows"),
    Extract("folder_without_data", folder_without_data,
            error=r"extract is a folder with no \.parquet or \.csv files in it",
            decision="error: a README beside the data is not data (.txt counts only when named as the source)"),
    # Separators, encodings, line endings.
    Extract("semicolon_separator", write_csv("semi.csv", separator=";"),
            log=r"semi\.csv: columns are separated by ';' \(detected from its first lines",
            columns=("age", "sex", "bmi", "ward"),
            decision="tolerated: the separator that splits every first line alike is used, and logged; "
                     "source.separator overrides"),
    Extract("tab_separator", write_csv("tab.csv", separator="\t"),
            log=r"tab\.csv: columns are separated by tab", columns=("age", "sex", "bmi", "ward"),
            decision="tolerated: detected as ';' is"),
    Extract("tsv_file", write_csv("tab.tsv", separator="\t"),
            log=r"tab\.tsv: columns are separated by tab", columns=("age", "sex", "bmi", "ward"),
            decision="tolerated: a .tsv file is tab-separated, detected"),
    Extract("pipe_separator", write_csv("pipe.csv", separator="|"),
            log=r"pipe\.csv: columns are separated by '\|'", columns=("age", "sex", "bmi", "ward"),
            decision="tolerated: detected as ';' is"),
    Extract("latin1_bytes", write_csv("latin1.csv", _latin1_ward(), encoding="latin-1"),
            error=r"latin1\.csv: line 2 is not UTF-8 text; save the file as UTF-8, or set source\.encoding",
            decision="error: guessing an encoding would garble names silently; the message names the line "
                     "and the setting"),
    Extract("latin1_declared", write_csv("latin1.csv", _latin1_ward(), encoding="latin-1"),
            config={"source": {"encoding": "latin-1"}}, values={"ward": {"Müller", "Schön"}},
            decision="tolerated: source.encoding: latin-1 re-encodes the file to UTF-8 as it is read"),
    Extract("cp1252_declared", write_csv("windows.csv", _latin1_ward(), encoding="cp1252"),
            config={"source": {"encoding": "cp1252"}}, values={"ward": {"Müller", "Schön"}},
            decision="tolerated: as latin-1 (Excel's 'CSV' on Windows)"),
    Extract("utf16_text", write_csv("utf16.csv", encoding="utf-16"),
            error=r"utf16\.csv: the file is UTF-16 text; save it as UTF-8, or set source\.encoding: utf-16",
            decision="error: Excel's 'Unicode text'; the message names the setting that reads it"),
    Extract("utf8_bom", write_csv("bom.csv", prefix="\ufeff"), columns=("age", "sex", "bmi", "ward"),
            decision="tolerated: the byte-order mark is not part of the first column's name"),
    Extract("crlf_line_endings", write_csv("crlf.csv", newline="\r\n"), values={"ward": {"a", "b", "c", "d"}},
            decision="tolerated: Windows line endings; the last column holds no carriage returns"),
    Extract("quoted_newline", write_csv("quoted.csv", with_column("status", _every(5, ["ok"] * ROWS, "two\nlines"))),
            values={"status": {"ok", "two\nlines"}},
            decision="tolerated: a quoted field may hold a line break; rows are counted as records"),
    Extract("gzip_csv", write_bytes("extract.csv.gz", gzip.compress(csv_text(base()).encode(), mtime=0)),
            columns=("age", "sex", "bmi", "ward"), decision="tolerated: .csv.gz is read as it is"),
    Extract("ragged_row", write_bytes("ragged.csv", _ragged().encode()),
            error=r"ragged\.csv: the record ending on line 302 has 6 fields but the header has 4",
            decision="error: a row with more fields than the header (an unquoted separator) cannot be placed; "
                     "the message names the line"),
    Extract("duplicate_column_names_csv", write_bytes("dup.csv", b"age,sex,age\n" + b"40,F,41\n" * ROWS),
            error=r"dup\.csv: columns 0, 2 \(counting from 0\) are all named 'age'",
            decision="error: which 'age' a config, a check or a report means would be a guess"),
    Extract("duplicate_column_names_parquet", write_parquet("dup.parquet", _duplicate_names),
            error=r"dup\.parquet: columns 0, 2 \(counting from 0\) are all named 'age'",
            decision="error: as in CSV"),
    # Parquet files that are damaged or disagree.
    Extract("truncated_parquet", damaged_parquet(cut=True), error=r"cannot read Parquet .*cut\.parquet",
            decision="error: a file cut short (no footer); the message names it"),
    Extract("corrupted_parquet", damaged_parquet(cut=False), error=r"cannot read Parquet .*corrupt\.parquet",
            decision="error: a damaged data page, found by the worker that reads it; one line, no worker "
                     "traceback"),
    Extract("partition_types_disagree",
            write_partitions(lambda: pa.table(base()), lambda: pa.table({**base(), "age": ["x"] * ROWS})),
            error=r"column 'age' is int64 in .*p0\.parquet but string in .*p1\.parquet",
            decision="error: a column that is numbers in one month and text in another; both files named"),
    Extract("partition_lacks_a_column",
            write_partitions(lambda: pa.table(base()), lambda: pa.table(base(seed=1)).drop_columns(["bmi"])),
            log=r"column 'bmi' is missing from 1 of 2 partitions \(e\.g\. .*p1\.parquet\): read as missing there",
            columns=("age", "sex", "bmi", "ward"),
            decision="tolerated: a column added in a later month; the other months' rows read it as missing"),
    # Columns that are odd but usable.
    Extract("all_null_column_csv", write_csv("empty_col.csv", with_column("empty", [""] * ROWS)),
            log=r"column 'empty' has no value in any row: kept as an empty text column",
            decision="tolerated: kept, so the synthetic data have the extract's columns (all missing)"),
    Extract("all_null_column_parquet",
            write_parquet("empty_col.parquet", lambda: pa.table({**base(), "empty": pa.nulls(ROWS)})),
            log=r"column 'empty' has no value in any row: kept as an empty text column",
            decision="tolerated: as in CSV (a SQL query or pandas types such a column null)"),
    Extract("constant_column", write_csv("constant.csv", with_column("site", ["X"] * ROWS)),
            log=r"column 'site' holds one value in every row: kept \(every synthetic row repeats it\)",
            decision="tolerated: modelled as it is; said, because a constant is often a filter's trace"),
    Extract("mixed_types", write_csv("mixed.csv", with_column("bmi", _every(10, base()["bmi"], NA))),
            log=r"column 'bmi' mixes numbers and text \(30 of 300 sampled values are not numbers\): modelled as "
                r"categorical; .*source\.na_values",
            kinds={"bmi": "categorical"},
            decision="tolerated: read as text (nothing lost), with the setting that reads it as numbers"),
    Extract("mixed_types_with_na_values", write_csv("mixed.csv", with_column("bmi", _every(10, base()["bmi"], NA))),
            config={"source": {"na_values": [NA]}}, kinds={"bmi": "numerical"},
            decision="tolerated: with the marker declared the column is numbers with 30 missing"),
    Extract("impossible_date", write_csv("dates.csv", with_column("admitted", _dates("2024-02-30"))),
            log=r"column 'admitted' looks like dates, but 1 of 300 sampled values are not valid ISO 8601 dates",
            decision="tolerated: undeclared, the column stays text (no value turned into a null silently)"),
    Extract("unparseable_date", write_csv("dates.csv", with_column("admitted", _dates("unknown"))),
            log=r"column 'admitted' looks like dates, but 1 of 300 sampled values are not valid ISO 8601 dates",
            decision="tolerated: as an impossible date"),
    Extract("impossible_date_declared", write_csv("dates.csv", with_column("admitted", _dates("2024-02-30"))),
            config={"columns": {"admitted": "datetime"}},
            error=r"column 'admitted': 1 of 300 values are not valid ISO 8601 dates .*source\.na_values",
            decision="error: the user said dates; a value that is not one is counted, with the setting that "
                     "reads it as missing"),
    Extract("date_format_mismatch", write_csv("dates.csv", with_column("admitted", _dates(None))),
            config={"columns": {"admitted": {"datetime_format": "%d/%m/%Y"}}},
            error=r"column 'admitted': 300 of 300 values do not match datetime_format '%d/%m/%Y'",
            decision="error: a declared format that does not fit"),
    Extract("negative_ages", write_csv("ages.csv", {**base(), "age": _every(20, base()["age"], -3)}),
            log=r"column 'age' looks like an age but 15 values are negative: kept as they are; .*"
                r"\{type: range, column: age, min: 0\}",
            decision="tolerated: the pipeline models what it sees; the log names the constraint that keeps "
                     "synthetic ages non-negative"),
    Extract("nan_and_inf_csv", write_csv("naninf.csv", with_column("bmi", _non_finite())),
            log=r"column 'bmi': 20 NaN or infinite values read as missing",
            decision="tolerated: NaN and ±inf are missing values, not numbers; counted in the log"),
    Extract("nan_and_inf_parquet", write_parquet("naninf.parquet", _non_finite_parquet),
            log=r"column 'bmi': 20 NaN or infinite values read as missing",
            decision="tolerated: as in CSV"),
    Extract("value_per_row", write_csv("codes.csv", with_column("code", [f"k{i:05d}" for i in range(ROWS)])),
            log=r"column 'code' has a different value in every row: treated as an identifier",
            kinds={"code": "identifier"},
            decision="tolerated: text distinct on every row is a label; as categories, each synthetic row "
                     "would carry a real row's value"),
    Extract("duplicated_unique_key", write_csv("encounters.csv", _encounters()),
            gate=r"expect_column_values_to_be_unique on encounter_id: .*1 values repeat another row's",
            decision="error: an id distinct on 99% of rows is a key; a repeat fails the validation gate "
                     "(exit 1, nothing trained)"),
    Extract("unnamed_index_column", _pandas_csv,
            log=r"column 0 \(empty header\) holds row numbers .*: dropped", columns=("age", "sex", "bmi", "ward"),
            decision="tolerated: pandas' and R's written-out row index is dropped (source.row_index: keep keeps it)"),
    Extract("odd_column_names",
            write_csv("names.csv", {"age (years)": base()["age"], "bp.systolic": base()["bmi"],
                                    "âge_née": base()["sex"], " ward ": base()["ward"]}),
            columns=("age (years)", "bp.systolic", "âge_née", " ward "),
            decision="tolerated: spaces, dots and non-ASCII letters are names like any other, kept exactly"),
    Extract("ten_thousand_character_cell",
            write_csv("long.csv", with_column("note", ["x" * 10_000] + ["short"] * (ROWS - 1))),
            log=r"column 'note' holds text up to 10,000 characters long: .*columns\.note\.pii: free_text",
            decision="tolerated: modelled as it is, with the setting that leaves free text out"),
    # Configs that do not match the data (found when the data are read).
    Extract("config_names_a_missing_column", write_csv("extract.csv"), config={"columns": {"agee": "numerical"}},
            error=r"config columns\.agee: no such column in the extract \(columns: age, sex, bmi, ward\)",
            decision="error: a typo in a column name never becomes a silently ignored setting"),
    Extract("config_drops_a_missing_column", write_csv("extract.csv"), config={"drop": ["notes"]},
            error=r"config drop\.notes: no such column in the extract", decision="error: as above"),
    Extract("entity_key_missing", write_csv("extract.csv"), config={"entity_key": "patient_nbr"},
            error=r"config entity_key: no column 'patient_nbr' in the extract", decision="error: as above"),
    Extract("declared_numerical_holds_text", write_csv("extract.csv"), config={"columns": {"ward": "numerical"}},
            error=r"column 'ward': declared numerical but holds large_string values",
            decision="error: a declaration the data contradict"),
]


# -- command lines refused before a flow starts --------------------------------------------------------
def _run(folder: Path, *extra: str) -> list[str]:
    return ["run", "--source", str(folder / "extract.csv"), "--output", str(folder / "out"), *extra]


def _config(folder: Path, text: str | bytes, name: str = "config.yaml") -> str:
    path = folder / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


COMMANDS: list[Command] = [
    Command("source_missing", lambda d: ["run", "--source", str(d / "nowhere.csv"), "--output", str(d / "out")],
            error=r"source not found: .*nowhere\.csv", decision="error: names the path"),
    Command("glob_matches_nothing",
            lambda d: ["run", "--source", str(d / "2024-*.parquet"), "--output", str(d / "out")],
            error=r"no files match .*2024-\*\.parquet", decision="error: names the pattern"),
    Command("unknown_file_format", lambda d: ["run", "--source", _config(d, "x", "extract.xlsx"), "--output",
                                              str(d / "out")],
            error=r"cannot tell the format of .*extract\.xlsx from its name; .*source\.format",
            decision="error: names the setting that declares the format"),
    Command("config_missing", lambda d: _run(d, "--config", str(d / "nowhere.yaml")),
            error=r"config file not found: .*nowhere\.yaml", decision="error: names the path"),
    Command("config_is_a_folder", lambda d: _run(d, "--config", str(d)),
            error=r"config .* is a folder; give the YAML file in it", decision="error: a folder is not a config"),
    Command("config_not_yaml", lambda d: _run(d, "--config", _config(d, "model: {epochs: [1\n")),
            error=r"config\.yaml: not valid YAML", decision="error: names the file"),
    Command("config_not_a_mapping", lambda d: _run(d, "--config", _config(d, "- epochs\n- 3\n")),
            error=r"config\.yaml: the top level must be a mapping of settings, got list",
            decision="error: names the file"),
    Command("config_not_text", lambda d: _run(d, "--config", _config(d, b"\xff\xfe\x00binary")),
            error=r"config\.yaml: not UTF-8 text", decision="error: a binary file given as the config"),
    Command("config_unknown_keys",
            lambda d: _run(d, "--config", _config(d, "model: {epoch: 3}\nsamplng: {rows: 5}\n")),
            error=r"config\.yaml: model\.epoch: unknown setting; samplng: unknown setting",
            decision="error: every unknown key named (a typo is never silently ignored)"),
    Command("epsilon_zero_flag", lambda d: _run(d, "--dp-epsilon", "0"),
            error=r"--dp-epsilon 0\.0: Input should be greater than 0", decision="error: ε must be positive"),
    Command("epsilon_negative_config", lambda d: _run(d, "--config", _config(d, "privacy: {epsilon: -1}\n")),
            error=r"privacy\.epsilon: Input should be greater than 0", decision="error: as the flag"),
    Command("rows_zero_flag", lambda d: _run(d, "--rows", "0"),
            error=r"--rows 0: Input should be greater than or equal to 1", decision="error: at least one row"),
    Command("rows_negative_config", lambda d: _run(d, "--config", _config(d, "sampling: {rows: -5}\n")),
            error=r"sampling\.rows: Input should be greater than or equal to 1", decision="error: as the flag"),
    Command("epochs_zero_flag", lambda d: _run(d, "--epochs", "0"),
            error=r"--epochs 0: Input should be greater than or equal to 1", decision="error: at least one epoch"),
    Command("seed_negative_flag", lambda d: _run(d, "--seed", "-1"),
            error=r"--seed -1: Input should be greater than or equal to 0",
            decision="error: seeds are non-negative (NumPy refuses others, deep in a run)"),
    Command("separator_too_long", lambda d: _run(d, "--config", _config(d, "source: {separator: ';;'}\n")),
            error=r"source\.separator: the separator must be one character or auto", decision="error"),
    Command("sample_rows_zero", lambda d: ["sample", "--model", str(d), "--rows", "0", "--output", str(d / "out")],
            error=r"--rows 0: Input should be greater than or equal to 1", decision="error: as for run"),
    Command("output_is_a_file", lambda d: ["run", "--source", str(d / "extract.csv"), "--output",
                                           str(d / "extract.csv")],
            error=r"output .*extract\.csv is a file, not a folder", decision="error: before anything is written"),
    Command("output_under_a_file", lambda d: _run(d)[:-1] + [str(d / "extract.csv" / "out")],
            error=r"cannot create the output folder .*extract\.csv/out: .*extract\.csv is a file, not a folder",
            decision="error: names the file in the way"),
]
