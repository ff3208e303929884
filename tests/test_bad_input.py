"""Bad input gets a clear answer: the corpus of tests/corpus/bad_input.py, each case with its outcome.

* Extracts are prepared the way the flow prepares them (``synth.preprocess`` on a Dask
  cluster shared by the module): a definite error is a :class:`SynthError` with a one-line
  message (the CLI's exit status 1); a tolerated oddity passes the validation gate and says
  in the log what was assumed. CSV cases are also read by ``read_table`` (``synth evaluate``).
* Command lines refused before any flow starts run as the ``synth`` command: exit status 1,
  one line, no traceback, nothing written.
* Three runs of the whole command prove the rest: a data error found inside the flow by a
  worker (one line, exit 1, an earlier release untouched), a full disk (one line naming the
  path, exit 1, no temporary file left), and every tolerated oddity in one extract (the run
  ends, with each assumption logged).
"""

from __future__ import annotations

import errno
import json
import os
import re
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from synth.config import parse_config
from synth.errors import OutputError, SynthError
from synth.io.atomic import TMP_PREFIX, atomic_dir, write_refused, write_json_atomic, write_parquet_atomic
from synth.io.outputs import check_output
from synth.io.sources import read_table
from synth.preprocess import preprocess, read_split
from tests.conftest import SMALL_EVALUATION
from tests.corpus.bad_input import COMMANDS, EXTRACTS, ROWS, base, csv_text, damaged_parquet
from tests.test_cli import synth

#: Values the corpus holds that no log line or error may quote (no real value in logs).
SENTINELS = ("Müller", "Schön", "2024-02-30", "unknown", "k00007", "n/a", "x" * 40, "two\nlines")
#: Cases read_table (``synth evaluate``, the benchmarks) must answer as preprocessing does.
READ_TABLE_CASES = {
    "empty_file", "blank_lines_only", "header_only", "semicolon_separator", "tab_separator", "pipe_separator",
    "latin1_bytes", "latin1_declared", "utf16_text", "utf8_bom", "crlf_line_endings", "quoted_newline", "gzip_csv",
    "ragged_row", "duplicate_column_names_csv", "impossible_date_declared", "date_format_mismatch",
}


@pytest.fixture(scope="module")
def scheduler():
    """One single-worker Dask cluster for the whole corpus (a cluster per case would cost seconds each)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


@pytest.mark.parametrize("case", EXTRACTS, ids=lambda c: c.name)
def test_extract(case, scheduler, tmp_path):
    source = case.make(tmp_path)
    config = parse_config({**case.config, "preprocess": {"dask_address": scheduler}})
    lines: list[str] = []
    if case.error:
        with pytest.raises(SynthError, match=case.error) as raised:
            preprocess(str(source), config, tmp_path / "work", log=lines.append)
        message = str(raised.value)
        assert "\n" not in message and not any(s in message for s in SENTINELS), message
        return
    prepared = preprocess(str(source), config, tmp_path / "work", log=lines.append)
    assert not any(s in line for line in lines for s in SENTINELS), lines
    if case.gate:  # refused by the validation gate: the flow stops before training (exit 1)
        assert not prepared.gate.success and re.search(case.gate, prepared.gate.summary()), prepared.gate.summary()
        return
    assert prepared.gate.success, prepared.gate.summary()
    assert prepared.rows == sum(read_split(prepared.clean_dir)[k].num_rows for k in (0, 1))
    if case.log:
        assert any(re.search(case.log, line) for line in lines), "\n".join(lines)
    if case.columns:
        assert prepared.schema.names == list(case.columns)
    for name, kind in case.kinds.items():
        assert prepared.schema[name].kind.value == kind, name
    for name, values in case.values.items():
        train, holdout = read_split(prepared.clean_dir, columns=[name])
        assert set(train[name].to_pylist() + holdout[name].to_pylist()) == values


@pytest.mark.parametrize("case", [c for c in EXTRACTS if c.name in READ_TABLE_CASES], ids=lambda c: c.name)
def test_extract_read_whole(case, tmp_path):
    source = case.make(tmp_path)
    config = parse_config(case.config)
    if case.error:
        with pytest.raises(SynthError, match=case.error):
            read_table(source, config)
        return
    lines: list[str] = []
    table = read_table(source, config, log=lines.append)
    assert table.num_rows == ROWS
    if case.columns:
        assert table.column_names == list(case.columns)
    if case.log:
        assert any(re.search(case.log, line) for line in lines), lines
    for name, values in case.values.items():
        assert set(table[name].to_pylist()) == values


def test_the_corpus_holds_at_least_thirty_cases_each_documented():
    names = [c.name for c in EXTRACTS] + [c.name for c in COMMANDS]
    assert len(names) == len(set(names)) >= 30
    documented = (Path(__file__).parents[1] / "docs" / "bad-input.md").read_text()
    assert [n for n in names if f"`{n}`" not in documented] == []
    for case in EXTRACTS:
        assert bool(case.error) + bool(case.gate) <= 1 and case.decision.split(":")[0] in ("error", "tolerated")
        assert case.decision.startswith("error") == bool(case.error or case.gate), case.name


@pytest.mark.parametrize("case", COMMANDS, ids=lambda c: c.name)
def test_command(case, tmp_path):
    (tmp_path / "extract.csv").write_text(csv_text(base()))
    done = synth(*case.args(tmp_path), tmp_path=tmp_path)
    assert done.returncode == 1, done.stderr
    assert re.search(case.error, done.stderr), done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.strip().count("\n") == 0, done.stderr  # one line
    assert not (tmp_path / "out").exists()


# -- the output folder --------------------------------------------------------------------------------
@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 555; the in-process test below covers it")
def test_an_output_folder_without_write_permission_is_refused_before_the_run(tmp_path):
    (tmp_path / "extract.csv").write_text(csv_text(base()))
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    done = synth("run", "--source", str(tmp_path / "extract.csv"), "--output", str(locked / "out"), tmp_path=tmp_path)
    assert done.returncode == 1
    assert re.search(r"cannot write .*locked/out: permission denied", done.stderr), done.stderr


def test_an_output_folder_that_refuses_writes_is_one_clear_error(tmp_path, monkeypatch):
    """The refusal a read-only mount or a missing permission gives, injected where the check meets it
    (as root, chmod does not stop a write)."""

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("synth.io.outputs.tempfile.mkdtemp", refuse)
    with pytest.raises(OutputError, match=rf"cannot write {re.escape(str(tmp_path))}/out: permission denied; "
                                          "choose another location, or make this one writable"):
        check_output(tmp_path / "out")
    monkeypatch.setattr("synth.io.outputs.tempfile.mkdtemp", lambda **kw: _raise(OSError(errno.EROFS, "Read-only")))
    with pytest.raises(OutputError, match="the file system is read-only"):
        check_output(tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def _raise(error):
    raise error


# -- a full disk ----------------------------------------------------------------------------------------
def _half_then_full(write):
    """A writer that writes part of its output, then finds the disk full (as a real full disk does)."""

    def full(data, target, *args, **kwargs):
        write(data.slice(0, 1) if isinstance(data, pa.Table) else data[:1], target, *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    return full


@pytest.mark.parametrize("what", ["json", "parquet", "folder"])
def test_a_full_disk_is_one_error_naming_the_path_and_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch, what):
    target = tmp_path / {"json": "metrics.json", "parquet": "part-00000.parquet", "folder": "model"}[what]
    if what == "folder":
        target.mkdir()
        (target / "model.pt").write_bytes(b"earlier model")
    else:
        target.write_bytes(b"earlier release")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    if what == "json":
        monkeypatch.setattr(Path, "write_bytes", _write_half_and_fail)
        writing = lambda: write_json_atomic(target, {"rows": 5})  # noqa: E731
    elif what == "parquet":
        monkeypatch.setattr(pq, "write_table", _half_then_full(pq.write_table))
        writing = lambda: write_parquet_atomic(target, pa.table({"a": [1, 2, 3]}))  # noqa: E731
    else:
        def writing():
            with atomic_dir(target) as tmp:
                (tmp / "model.pt").write_bytes(b"half a mod")
                raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(OutputError, match=rf"^cannot write {re.escape(str(target))}: no space left on the device; "
                                          "free some space or choose another location, then run again$"):
        writing()
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before  # the earlier file untouched, nothing half-written beside it
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(TMP_PREFIX)]


def _write_half_and_fail(path: Path, data: bytes) -> None:
    with open(path, "wb") as out:
        out.write(data[: len(data) // 2])
    raise OSError(errno.ENOSPC, "No space left on device")


def test_storage_errors_reported_in_a_message_only_are_recognised(tmp_path):
    import polars as pl

    polars_full = pl.exceptions.ComputeError("failed to write: No space left on device (os error 28)")
    arrow_full = OSError("[Errno 28] Error writing bytes to file")
    for error in (polars_full, arrow_full):
        assert "no space left" in str(write_refused(error, tmp_path / "x"))
    assert write_refused(OSError(errno.ECONNRESET, "Connection reset"), tmp_path / "x") is None  # transient: retried


# -- whole runs -----------------------------------------------------------------------------------------
@pytest.mark.e2e
def test_a_damaged_file_found_inside_the_flow_is_one_line_and_leaves_the_earlier_release(tmp_path):
    source = damaged_parquet(cut=False)(tmp_path)
    out = tmp_path / "out"
    earlier = {
        out / "synthetic" / "part-00000.parquet": b"PAR1 earlier synthetic rows",
        out / "model" / "model.pt": b"earlier model",
        out / "metrics.json": b'{"rows": 5}',
        out / "report.html": b"<html>earlier report</html>",
    }
    for path, data in earlier.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    done = synth("run", "--source", str(source), "--output", str(out), tmp_path=tmp_path, level="WARNING")
    console = done.stdout + done.stderr
    assert done.returncode == 1, console[-3000:]
    assert re.search(r"^error: cannot read Parquet .*corrupt\.parquet: .*$", done.stderr, re.MULTILINE), console
    assert "Traceback" not in console and "Compute Failed" not in console
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == earlier  # untouched, nothing added


SITE_FULL_DISK = '''
import errno
import pyarrow.parquet as pq

_write_table = pq.write_table


def write_table(table, where, *args, **kwargs):  # the disk fills up half-way through the first Parquet file
    _write_table(table.slice(0, max(1, table.num_rows // 2)), where, *args, **kwargs)
    raise OSError(errno.ENOSPC, "No space left on device")


pq.write_table = write_table
'''


@pytest.mark.e2e
def test_a_full_disk_during_a_run_is_one_line_naming_the_path_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    source = tmp_path / "extract.parquet"
    pq.write_table(pa.table(base()), source)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITE_FULL_DISK)  # every process of the run: the CLI, Dask's workers
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the work folder, where the disk fills
    out = tmp_path / "out"
    done = synth("run", "--source", str(source), "--output", str(out), tmp_path=tmp_path, level="WARNING")
    console = done.stdout + done.stderr
    assert done.returncode == 1, console[-3000:]
    assert re.search(r"^error: cannot write .*/clean/(train|holdout)/part-00000\.parquet: no space left on the "
                     r"device; free some space or choose another location, then run again$", done.stderr,
                     re.MULTILINE), console
    assert "Traceback" not in console
    leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith(TMP_PREFIX)]
    assert leftovers == []
    assert not any(out.rglob("*.json")) and not (out / "model").exists() and not (out / "synthetic").exists()


@pytest.mark.e2e
def test_every_tolerated_oddity_at_once_runs_to_the_end_and_says_what_it_assumed(tmp_path):
    """One extract with all of them: ';' separated, a BOM, CRLF, a row index, odd names, a line break in a
    field, a 10,000-character cell, NaN and inf, negative ages, numbers mixed with text, a 30 February, a
    constant, an empty column, a value per row."""
    from tests.corpus.bad_input import EXTRACTS as CASES

    rows = 400
    columns = base(rows, seed=3)
    extract = {
        "": list(range(rows)),  # the row index pandas writes
        "age (years)": [-a if i % 50 == 0 else a for i, a in enumerate(columns["age"])],
        "bp.systolic": ["NaN" if i % 13 == 0 else "inf" if i % 41 == 0 else str(100 + i % 60) for i in range(rows)],
        "âge_née": columns["sex"],
        "site": ["X"] * rows,
        "empty": [""] * rows,
        "bmi": ["n/a" if i % 10 == 0 else str(b) for i, b in enumerate(columns["bmi"])],
        "admitted": [f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}" if i != 3 else "2024-02-30" for i in range(rows)],
        "code": [f"k{i:05d}" for i in range(rows)],
        "note": ["x" * 10_000 if i == 4 else "two\nlines" if i % 7 == 0 else "ok" for i in range(rows)],
        "ward": columns["ward"],
    }
    source = tmp_path / "odd.csv"
    source.write_bytes(("\ufeff" + csv_text(extract, separator=";", newline="\r\n")).encode())
    config = tmp_path / "config.yaml"
    config.write_text(textwrap.dedent("""\
        model: {epochs: 1}
        gate: {enforce: false, reason: "test corpus: checks that odd data run to the end, not the data's quality"}
        """) + SMALL_EVALUATION)
    out = tmp_path / "out"
    done = synth("run", "--source", str(source), "--output", str(out), "--config", str(config), tmp_path=tmp_path,
                 level="INFO")
    console = done.stdout + done.stderr
    assert done.returncode == 0, console[-3000:]
    expected = {c.name: c.log for c in CASES if c.log}
    said = [
        r"odd\.csv: columns are separated by ';' \(detected", expected["unnamed_index_column"],
        r"column 'age \(years\)' looks like an age but 8 values are negative",
        r"column 'bp\.systolic': 40 NaN or infinite values read as missing",
        r"column 'site' holds one value in every row", expected["all_null_column_csv"],
        r"column 'bmi' mixes numbers and text \(40 of 400 sampled values are not numbers\)",
        r"column 'admitted' looks like dates, but 1 of 400 sampled values are not valid ISO 8601 dates",
        expected["value_per_row"], r"column 'note' holds text up to 10,000 characters long",
    ]
    assert [s for s in said if not re.search(s, console)] == [], console[-5000:]
    assert not any(s in console for s in SENTINELS)
    synthetic = ds.dataset(out / "synthetic").to_table()
    assert synthetic.column_names == list(extract)[1:] and synthetic.num_rows == rows
    assert synthetic["empty"].null_count == rows
    assert set(synthetic["site"].to_pylist()) == {"X"}
    assert not set(synthetic["code"].to_pylist()) & set(extract["code"])  # fresh labels, never the real ones
    assert json.loads((out / "metrics.json").read_text())["columns"] == len(extract) - 1
