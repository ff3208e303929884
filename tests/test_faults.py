"""Transient faults are retried, user errors are not (synth.io.faults and the tasks' retry condition).

Known answers for the classification of the errors drivers raise; faults injected into an
fsspec store (``flaky://``, tests/flaky_store.py) and into a real PostgreSQL connection
(terminated from a second connection while a server-side cursor streams). A fault that may
pass is retried by its task and the run completes; a missing file fails at once, one line.
Retry delays are patched to zero.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import threading
import uuid

import fsspec
import polars as pl
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from typer.testing import CliRunner

from synth.config import PipelineConfig
from synth.errors import SourceError, TransientError
from synth.io import sql
from synth.io.faults import storage_error, transient_fault
from synth.io.uri import list_files
from synth.preprocess.partitions import plan_source, read_partition, source_fingerprint
from synth.runs import open_work_dir
from tasks.io import upload_output
from tasks.preprocess import fingerprint_source, preprocess_extract
from tests.conftest import SMALL_EVALUATION
from tests.flaky_store import FlakyStore, flaky_root  # noqa: F401  (a fixture)
from tests.postgres import postgres  # noqa: F401  (fixture)


class ClientError(Exception):
    """Shaped like botocore's: the S3 error code and HTTP status in ``response``."""

    def __init__(self, code: str, status: int):
        super().__init__(f"An error occurred ({code}) when calling the GetObject operation")
        self.response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}


class ClientResponseError(Exception):
    """Shaped like aiohttp's (fsspec's HTTP and cloud stores): the HTTP status in ``status``."""

    def __init__(self, status: int):
        super().__init__(f"{status}, message='...'")
        self.status = status


def _caused_by(error: Exception, cause: Exception) -> Exception:
    error.__cause__ = cause
    return error


def _sa(kind, orig: Exception, **kwargs) -> Exception:
    return kind("SELECT * FROM admissions", {}, orig, **kwargs)


TRANSIENT = {
    "connection reset": ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
    "timeout": TimeoutError("The read operation timed out"),
    "broken pipe": BrokenPipeError(errno.EPIPE, "Broken pipe"),
    "connection error": ConnectionError("Connection aborted."),
    "network errno without subclass": OSError(errno.ENETUNREACH, "Network is unreachable"),
    "S3 SlowDown (botocore)": ClientError("SlowDown", 503),
    "S3 SlowDown as s3fs raises it": _caused_by(OSError(errno.EIO, "Input/output error"), ClientError("SlowDown", 503)),
    "HTTP 429 (aiohttp)": ClientResponseError(429),
    "HTTP 503 as the cause of an OSError": _caused_by(OSError("cannot read part-0"), ClientResponseError(503)),
    "PyArrow S3 SLOW_DOWN": OSError("AWS Error SLOW_DOWN during GetObject operation: Please reduce your request rate."),
    "PyArrow S3 network": OSError(
        "AWS Error NETWORK_CONNECTION during HeadObject operation: curlCode: 28, Timeout was reached"
    ),
    "Polars object store 503": pl.exceptions.ComputeError(
        "Generic S3 error: HTTP status server error (503 Service Unavailable)"
    ),
    "psycopg admin shutdown (57P01)": _sa(
        sa.exc.OperationalError, psycopg.errors.AdminShutdown("terminating connection due to administrator command")
    ),
    "psycopg dropped connection": _sa(
        sa.exc.OperationalError, psycopg.OperationalError("consuming input failed: server closed the connection")
    ),
    "sqlalchemy invalidated connection": _sa(
        sa.exc.InterfaceError, Exception("connection already closed"), connection_invalidated=True
    ),
    "sqlalchemy DisconnectionError": sa.exc.DisconnectionError("connection dropped by the pool"),
    "sqlite database is locked": _sa(sa.exc.OperationalError, sqlite3.OperationalError("database is locked")),
    "TransientError itself": TransientError("cannot read x: timed out"),
}
USER_ERRORS = {
    "missing file": FileNotFoundError(errno.ENOENT, "No such file or directory", "extract/part-0.parquet"),
    "permission": PermissionError(errno.EACCES, "Permission denied", "extract/part-0.parquet"),
    "missing file after a reset": _caused_by(FileNotFoundError(errno.ENOENT, "gone"), ConnectionResetError("reset")),
    "disk full": OSError(errno.ENOSPC, "No space left on device"),
    "malformed Parquet": pa.ArrowInvalid("Parquet magic bytes not found in footer. Either the file is corrupted"),
    "S3 AccessDenied": ClientError("AccessDenied", 403),
    "HTTP 404": ClientResponseError(404),
    "bad query": _sa(sa.exc.ProgrammingError, psycopg.errors.SyntaxError('syntax error at or near "SELEC"')),
    "unknown table": _sa(sa.exc.ProgrammingError, psycopg.errors.UndefinedTable('relation "admisions" does not exist')),
    "bad password": _sa(
        sa.exc.OperationalError, psycopg.OperationalError("connection failed: FATAL:  password authentication failed")
    ),
    "a user error": SourceError("source not found: extract.csv"),
    "a bug": KeyError("column"),
}


@pytest.mark.parametrize("error", TRANSIENT.values(), ids=TRANSIENT.keys())
def test_faults_that_may_pass_are_transient(error):
    assert transient_fault(error) is not None
    raised = storage_error(error, "cannot read Parquet s3://bucket/part-0.parquet")
    assert type(raised) is TransientError
    assert str(raised).startswith("cannot read Parquet s3://bucket/part-0.parquet: ")
    assert "(a transient fault: " in str(raised) and "\n" not in str(raised)


@pytest.mark.parametrize("error", USER_ERRORS.values(), ids=USER_ERRORS.keys())
def test_missing_refused_malformed_and_bad_queries_are_user_errors(error):
    assert transient_fault(error) is None
    raised = storage_error(error, "cannot read Parquet s3://bucket/part-0.parquet")
    assert type(raised) is SourceError
    assert "transient" not in str(raised)


def test_the_reason_named_is_the_fault():
    assert transient_fault(TRANSIENT["connection reset"]) == "ConnectionResetError"
    assert transient_fault(TRANSIENT["S3 SlowDown (botocore)"]) == "SlowDown"
    assert transient_fault(TRANSIENT["HTTP 429 (aiohttp)"]) == "HTTP 429"
    assert transient_fault(TRANSIENT["psycopg admin shutdown (57P01)"]) == "SQLSTATE 57P01"
    assert transient_fault(TRANSIENT["sqlalchemy invalidated connection"]) == "database connection lost"
    assert transient_fault(TRANSIENT["PyArrow S3 SLOW_DOWN"]) == "slow_down"


# -- an fsspec store that fails on demand --------------------------------------------------------



def _write_parquet(path: str, table: pa.Table) -> None:
    with fsspec.filesystem("memory").open(path, "wb") as out:
        pq.write_table(table, out)


def test_store_faults_are_transient_and_a_missing_file_is_not(flaky_root, tmp_path):
    _write_parquet(f"{flaky_root}/extract/a.parquet", pa.table({"x": list(range(1_200))}))
    source = f"flaky://{flaky_root}/extract"

    FlakyStore.fail("info", ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"))
    with pytest.raises(TransientError, match=rf"cannot list {source}: .*Connection reset by peer"):
        list_files(source)  # not "source not found": fsspec's exists() would have answered False
    FlakyStore.fail("open", TimeoutError("The read operation timed out"))
    with pytest.raises(TransientError, match=r"cannot read Parquet flaky:///flaky-.*/a.parquet: The read operation"):
        plan_source(source, PipelineConfig(), tmp_path / "raw")
    partitions = plan_source(source, PipelineConfig(), tmp_path / "raw")  # the fault passed
    FlakyStore.fail("open", ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"))
    with pytest.raises(TransientError):
        read_partition(partitions[0])  # on a Dask worker: the same classification
    assert read_partition(partitions[0]).num_rows == 1_200

    FlakyStore.fail("open", FileNotFoundError(errno.ENOENT, "No such file or directory"))
    with pytest.raises(SourceError, match=r"cannot read Parquet flaky:///flaky-.*/a.parquet: .*No such file"):
        read_partition(partitions[0])
    FlakyStore.fail("info", PermissionError(errno.EACCES, "Access Denied"))
    with pytest.raises(SourceError, match="Access Denied"):
        list_files(source)
    with pytest.raises(SourceError, match=f"source not found: flaky://{flaky_root}/nothing"):
        list_files(f"flaky://{flaky_root}/nothing")


# -- the retry condition in real flow runs -------------------------------------------------------


CONFIG = """
seed: 0
entity_key: patient_nbr
columns: {encounter_id: identifier}
model: {epochs: 1, max_training_rows: 1000}
preprocess: {partition_rows: 1000}
sampling: {chunk_rows: 1000}
""" + SMALL_EVALUATION


@pytest.fixture(scope="module")
def cluster():
    """An in-process Dask cluster: its workers see the in-memory store and the injected faults."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as local:
        yield local.scheduler_address


@pytest.fixture
def no_retry_delays(monkeypatch):
    for task in (fingerprint_source, preprocess_extract, upload_output):
        monkeypatch.setattr(task, "retry_delay_seconds", [0] * max(task.retries, 1))


def _task_runs(flow_run_id) -> dict[str, tuple[str, int]]:
    """Task name -> (state name, attempts) of a flow run's task runs, read back from Prefect's API."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {run.name.rsplit("-", 1)[0]: (run.state.name, run.run_count) for run in runs}


def _extract(root: str, diabetes_csv) -> str:
    frame = pl.read_csv(diabetes_csv, null_values=["?"], infer_schema_length=None).sample(2_000, seed=2)
    _write_parquet(f"{root}/extract/2024-01.parquet", frame.slice(0, 1_000).to_arrow())
    _write_parquet(f"{root}/extract/2024-02.parquet", frame.slice(1_000, 1_000).to_arrow())
    return f"flaky://{root}/extract"


@pytest.mark.e2e
def test_a_flaky_store_is_retried_and_the_run_completes(flaky_root, cluster, no_retry_delays, diabetes_csv, tmp_path):
    from flows.generate import generate
    from flows.parameters import GenerateParameters

    source = _extract(flaky_root, diabetes_csv)
    (tmp_path / "config.yaml").write_text(CONFIG)
    FlakyStore.fail("info", ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), times=2)
    FlakyStore.fail("open", _caused_by(OSError(errno.EIO, "Input/output error"), ClientError("SlowDown", 503)))
    FlakyStore.fail("put_file", TimeoutError("The write operation timed out"))
    params = GenerateParameters(
        source=source, output=f"flaky://{flaky_root}/releases/2024-02", config_path=str(tmp_path / "config.yaml"),
        work_dir=str(tmp_path / "work"), dask_address=cluster,
    )
    state = generate(params, return_state=True)
    assert state.is_completed(), state.message
    assert FlakyStore.pending() == 0  # every fault was met
    runs = _task_runs(state.state_details.flow_run_id)
    assert runs["fingerprint-source"] == ("Completed", 3)  # two resets, then listed
    assert runs["preprocess-extract"] == ("Completed", 2)  # throttled once, then read
    assert runs["upload-output"] == ("Completed", 2)  # timed out once, then uploaded
    assert runs["train-model"] == ("Completed", 1)
    remote = fsspec.filesystem("memory")
    released = f"{flaky_root}/releases/2024-02"
    assert remote.exists(f"{released}/manifest.json") and remote.exists(f"{released}/metrics.json")
    parts = remote.glob(f"{released}/synthetic/*.parquet")
    assert sum(pq.ParquetFile(remote.open(p)).metadata.num_rows for p in parts) == 2_000


@pytest.mark.e2e
def test_a_missing_file_is_not_retried_and_fails_in_one_line(flaky_root, cluster, no_retry_delays, diabetes_csv, tmp_path):
    from flows.generate import generate
    from flows.parameters import GenerateParameters

    source = _extract(flaky_root, diabetes_csv)
    (tmp_path / "config.yaml").write_text(CONFIG)
    FlakyStore.fail("open", FileNotFoundError(errno.ENOENT, "No such file or directory"), times=5)
    params = GenerateParameters(
        source=source, output=str(tmp_path / "out"), config_path=str(tmp_path / "config.yaml"),
        work_dir=str(tmp_path / "work"), dask_address=cluster,
    )
    state = generate(params, return_state=True)
    assert state.is_failed()
    runs = _task_runs(state.state_details.flow_run_id)
    assert runs["preprocess-extract"] == ("Failed", 1)  # one attempt: a retry cannot bring the file back
    assert FlakyStore.pending() == 4
    assert "cannot read Parquet flaky:///flaky-" in state.message and "No such file" in state.message
    assert "\n" not in state.message
    with pytest.raises(SourceError):
        state.result()


def test_a_fault_that_outlasts_the_retries_fails_the_run_after_the_last_attempt(flaky_root, no_retry_delays):
    _write_parquet(f"{flaky_root}/extract/a.parquet", pa.table({"x": list(range(10))}))
    source = f"flaky://{flaky_root}/extract"
    FlakyStore.fail("info", ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), times=5)

    @flow(name="fingerprint-a-flaky-store")
    def fingerprint() -> str:
        return fingerprint_source(source, PipelineConfig())

    state = fingerprint(return_state=True)
    assert state.is_failed()
    assert _task_runs(state.state_details.flow_run_id)["fingerprint-source"] == ("Failed", 4)  # 1 + 3 retries
    assert FlakyStore.pending() == 1
    assert f"cannot list {source}: [Errno 104] Connection reset by peer (a transient fault: " in state.message
    assert "\n" not in state.message
    with pytest.raises(TransientError):
        state.result()


def test_a_fault_that_outlasts_the_retries_is_one_line_and_exit_75(monkeypatch, tmp_path):
    import flows.cli as cli

    def unreachable(source, declared_format="auto"):
        raise TransientError(f"cannot list {source}: Connection reset by peer (a transient fault: ECONNRESET)")

    monkeypatch.setattr(cli, "check_source", unreachable)
    done = CliRunner().invoke(cli.app, ["run", "--source", "s3://bucket/extract", "--output", str(tmp_path / "out")])
    assert done.exit_code == cli.TRANSIENT_FAILED == 75
    assert "cannot list s3://bucket/extract: Connection reset by peer" in done.output
    assert "try again later" in done.output and "Traceback" not in done.output


@pytest.mark.parametrize(("error", "traceback_kept"), [
    (TransientError("cannot read x: timed out (a transient fault: TimeoutError)"), False),
    (SourceError("source not found: x"), False),
    (KeyError("a bug"), True),
])
def test_faults_and_user_errors_are_logged_without_a_traceback_bugs_with_one(error, traceback_kept):
    import tasks  # noqa: F401  (installs the filter)

    record = logging.LogRecord("prefect.task_runs", logging.ERROR, __file__, 1, "failed", None,
                               (type(error), error, None))
    assert logging.getLogger("prefect.task_runs").filter(record)
    assert (record.exc_info is not None) is traceback_kept


# -- a PostgreSQL connection dropped mid-read ----------------------------------------------------


def _terminate(url: str, application: str) -> int:
    """Terminate, from a second connection, the backends of ``application``; returns how many."""
    admin = sa.create_engine(url)
    try:
        with admin.connect() as conn:
            return len(conn.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = :name AND pid <> pg_backend_pid()"
            ), {"name": application}).all())
    finally:
        admin.dispose()


@pytest.fixture(scope="module")
def admissions(postgres):  # noqa: F811
    engine, schema, url = postgres
    frame = pl.DataFrame({"n": range(3_000), "ward": [f"w{i % 5}" for i in range(3_000)],
                          "age": [20 + i % 60 for i in range(3_000)]})
    sql.write_table(engine, f"{schema}.admissions", [frame.to_arrow()])
    return f"{schema}.admissions", url


def _reading_url(url: str) -> tuple[str, str]:
    application = f"synth-faults-{uuid.uuid4().hex[:8]}"
    return f"{url}{'&' if '?' in url else '?'}application_name={application}", application


def test_a_connection_dropped_mid_read_is_transient(admissions):
    table, url = admissions
    reading, application = _reading_url(url)
    engine = sa.create_engine(reading)
    try:
        batches = sql.read_batches(engine, f"SELECT * FROM {table} ORDER BY n", batch_rows=1_000)
        assert next(batches).num_rows == 1_000  # the server-side cursor holds the rest
        assert _terminate(url, application) == 1
        with pytest.raises(TransientError, match=r"the SQL query failed: .*terminating connection"):
            list(batches)
        with pytest.raises(SourceError, match="the SQL query failed: .*does not exist"):
            list(sql.read_batches(engine, f"SELECT * FROM {table}_misspelt"))
    finally:
        engine.dispose()


def test_preprocessing_retries_a_dropped_connection_and_completes(admissions, cluster, no_retry_delays, monkeypatch,
                                                                  tmp_path):
    table, url = admissions
    reading, application = _reading_url(url)
    monkeypatch.setenv("SYNTH_SQL_URL", reading)
    real_read = sql.read_batches
    dropped = threading.Event()

    def drop_once(engine, query, batch_rows=500_000):
        batches = real_read(engine, query, batch_rows)
        yield next(batches)
        if not dropped.is_set():
            dropped.set()
            assert _terminate(url, application) == 1
        yield from batches

    monkeypatch.setattr(sql, "read_batches", drop_once)
    config = PipelineConfig.model_validate({"preprocess": {"partition_rows": 1_000, "dask_address": cluster}})
    source = f"sql:SELECT * FROM {table} ORDER BY n"
    work = open_work_dir("sql-drop", tmp_path)

    @flow(name="stage-sql-extract")
    def stage():
        return preprocess_extract(source, source_fingerprint(source, config), config, work)

    state = stage(return_state=True)
    assert state.is_completed(), state.message
    assert dropped.is_set()
    assert _task_runs(state.state_details.flow_run_id)["preprocess-extract"] == ("Completed", 2)
    prepared = state.result()
    assert prepared.rows == 3_000 and prepared.train_rows + prepared.holdout_rows == 3_000
