"""Reruns are idempotent: an edited suite is checked again, an append is made once, a withdrawn release goes remotely.

* The preprocessing cache key and the run key hold the expectation suite's *content*: a
  suite edited in place gives a fresh verdict, not the cached one (real Prefect cache).
* ``sql_mode: append`` records each release in a ledger table in the same transaction: the
  same release appended again (a retried or re-triggered run), even by two runs at once,
  adds no rows (SQLite here, PostgreSQL when ``SYNTH_TEST_POSTGRES_URL`` is set).
* A remote output's ``synthetic/`` from an earlier run is deleted when a new run's gate
  fails, before the new metrics are uploaded (an fsspec store that records its calls).
"""

from __future__ import annotations

import json
import shutil
import threading
import uuid
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from prefect import flow

from synth.config import PipelineConfig
from synth.io import sql
from synth.runs import open_work_dir, preprocess_settings, run_key
from synth.sampling import SampleResult
from tasks.caching import RunInputs
from tasks.evaluate import release_synthetic
from tasks.io import upload_output, write_sql_table
from tasks.preprocess import RunFolders, fingerprint_source, preprocess_extract
from tests.flaky_store import FlakyStore, flaky_root  # noqa: F401  (a fixture)
from tests.postgres import postgres  # noqa: F401  (fixture)

# -- the expectation suite is keyed by its content -----------------------------------------------


def _suite(path: Path, min_rows: int) -> Path:
    path.write_text(json.dumps({"expectations": [
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": min_rows}},
    ]}))
    return path


def test_the_suite_is_keyed_by_its_content_not_its_path(tmp_path):
    suite = _suite(tmp_path / "suite.json", 1)
    config = PipelineConfig().with_overrides(validation={"suite": str(suite)})
    before = (preprocess_settings(config), run_key("data", config, "out"))
    _suite(suite, 100_000)  # edited in place
    assert preprocess_settings(config) != before[0] and run_key("data", config, "out") != before[1]

    copy = tmp_path / "elsewhere.json"
    shutil.copy(suite, copy)  # the same content at another path
    moved = config.with_overrides(validation={"suite": str(copy)})
    assert (preprocess_settings(moved), run_key("data", moved, "out")) == (
        preprocess_settings(config), run_key("data", config, "out"))
    assert json.loads(preprocess_settings(config))["validation"]["suite"].startswith("sha256:")

    inputs = {"source": "x.parquet", "fingerprint": "f", "config": config, "work": open_work_dir("k", tmp_path)}
    key = RunInputs().compute_key(None, inputs, {})
    _suite(suite, 1)
    assert RunInputs().compute_key(None, inputs, {}) != key


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as local:
        yield local.scheduler_address


@flow(name="preprocess-and-check")
def _preprocess(source: str, config: PipelineConfig, work_root: str) -> tuple[str, bool]:
    """What generate does up to the gate: the same tasks, cache and work folder."""
    fingerprint = fingerprint_source(source, config)
    work = open_work_dir(run_key(fingerprint, config, "out"), work_root)
    state = preprocess_extract(source, fingerprint, config, work, return_state=True)
    return state.name, state.result().gate.success


def test_a_suite_edited_in_place_is_checked_again_not_served_from_the_cache(cluster, tmp_path):
    extract = tmp_path / f"extract-{uuid.uuid4().hex[:8]}.parquet"
    pq.write_table(pa.table({"age": [20 + i % 60 for i in range(1_200)], "ward": [f"w{i % 4}" for i in range(1_200)]}),
                   extract)
    suite = _suite(tmp_path / "suite.json", 1)
    config = PipelineConfig.model_validate(
        {"validation": {"suite": str(suite)}, "preprocess": {"partition_rows": 1_000, "dask_address": cluster}}
    )
    assert _preprocess(str(extract), config, str(tmp_path / "work")) == ("Completed", True)
    assert _preprocess(str(extract), config, str(tmp_path / "work")) == ("Cached", True)  # nothing changed
    _suite(suite, 100_000)  # the same path, a stricter suite
    assert _preprocess(str(extract), config, str(tmp_path / "work")) == ("Completed", False)


# -- sql_mode: append is made once per release ---------------------------------------------------


def _rows(n: int, start: int = 0) -> pa.Table:
    return pa.table({"id": pa.array(range(start, start + n), pa.int64()), "ward": [f"w{i % 3}" for i in range(n)]})


def _count(engine: sa.Engine, name: str) -> int:
    return sql.count_rows(engine, f"SELECT * FROM {name}")


def _ledger(engine: sa.Engine, schema: str | None = None) -> list[tuple]:
    name = f"{schema}.{sql.LEDGER}" if schema else sql.LEDGER
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            f"SELECT target_table, release_key, row_count, run_id FROM {name} ORDER BY release_key"))]


def _append_once_checks(engine: sa.Engine, name: str, schema: str | None = None) -> None:
    assert sql.write_table(engine, name, [_rows(3)], mode="append", release="2024-01", run_id="run-a") == 3
    assert sql.write_table(engine, name, [_rows(3)], mode="append", release="2024-01", run_id="run-b") == 0
    assert _count(engine, name) == 3  # the rerun appended nothing
    assert sql.write_table(engine, name, [_rows(2, 3)], mode="append", release="2024-02", run_id="run-c") == 2
    assert sql.write_table(engine, name, [_rows(1, 5)], mode="append") == 1  # no release named: a plain append
    assert _count(engine, name) == 6
    assert [row for row in _ledger(engine, schema) if row[0] == name] == [
        (name, "2024-01", 3, "run-a"), (name, "2024-02", 2, "run-c")]
    assert sql.write_table(engine, name, [_rows(4)], mode="replace", release="2024-01") == 4  # replace: no ledger
    assert _count(engine, name) == 4


def test_an_append_is_made_once_per_release_sqlite(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    _append_once_checks(engine, "synthetic_admissions")


def test_an_append_is_made_once_per_release_postgres(postgres):  # noqa: F811
    engine, schema, _ = postgres
    _append_once_checks(engine, f"{schema}.synthetic_admissions", schema)


def test_two_runs_appending_the_same_release_at_once_append_it_once(postgres):  # noqa: F811
    engine, schema, _ = postgres
    name = f"{schema}.concurrent"
    sql.write_table(engine, name, [_rows(1)], mode="replace")
    checked = [threading.Event(), threading.Event()]
    written: dict[int, int] = {}

    def batches(me: int):
        yield _rows(5)
        # Both runs are inside their transactions and have found no ledger entry: neither has committed.
        checked[me].set()
        assert checked[1 - me].wait(10)
        yield _rows(5, 5)

    def append(me: int) -> None:
        written[me] = sql.write_table(engine, name, batches(me), mode="append", release="2024-03", run_id=f"run-{me}")

    threads = [threading.Thread(target=append, args=(k,)) for k in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(written.values()) == [0, 10]
    assert _count(engine, name) == 11
    assert [row[:3] for row in _ledger(engine, schema) if row[0] == name] == [(name, "2024-03", 10)]


def test_a_rerun_of_the_sink_task_appends_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("SYNTH_SQL_URL", f"sqlite:///{tmp_path / 'warehouse.db'}")
    synthetic = tmp_path / "out" / "synthetic"
    synthetic.mkdir(parents=True)
    pq.write_table(_rows(6), synthetic / "part-00000.parquet")
    pq.write_table(_rows(4, 6), synthetic / "part-00001.parquet")

    @flow(name="sql-sink")
    def sink(release: str) -> list[dict]:
        return write_sql_table(str(synthetic), "synthetic_admissions", "append", PipelineConfig(), release)

    first, second = sink("run-key-1"), sink("run-key-1")
    assert first == [{"kind": "sql", "table": "synthetic_admissions", "mode": "append", "rows": 10,
                      "release": "run-key-1"}]
    assert second[0]["rows"] == 0
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    assert _count(engine, "synthetic_admissions") == 10
    assert sink("run-key-2")[0]["rows"] == 10  # another release (next month's run) is appended
    assert _count(engine, "synthetic_admissions") == 20


# -- a withdrawn release is withdrawn remotely too -----------------------------------------------



def _staged_run(local: Path, parts: int, quality: float) -> SampleResult:
    """A local output folder as a run leaves it before release: staged parts, model, metrics."""
    staging = local / "staging"
    staging.mkdir(parents=True)
    for k in range(parts):
        pq.write_table(_rows(10, 10 * k), staging / f"part-{k:05d}.parquet")
    (local / "model").mkdir(exist_ok=True)
    (local / "model" / "model.pt").write_bytes(f"weights {quality}".encode())
    (local / "metrics.json").write_text(json.dumps({"quality_score": quality}))
    (local / "manifest.json").write_text(json.dumps({"quality_score": quality}))
    return SampleResult(folder=str(staging), rows=10 * parts, chunks=parts)


@flow(name="release-and-upload")
def _release_and_upload(sampled: SampleResult, run: RunFolders, verdict: str) -> str | None:
    gate = {"verdict": verdict, "reasons": [] if verdict == "pass" else ["quality 0.41 < 0.60"], "checks": []}
    released = release_synthetic(sampled, str(Path(run.output) / "synthetic"), {"gate": gate})
    upload_output(run)
    return released


def test_a_failed_gate_withdraws_the_remote_release_before_new_metrics_arrive(flaky_root, tmp_path):
    store = fsspec.filesystem("memory")
    uri = f"flaky://{flaky_root}/releases/2024-03"
    run = RunFolders(work=open_work_dir("k", tmp_path / "work"), output=str(tmp_path / "local"), remote=uri)

    assert _release_and_upload(_staged_run(Path(run.output), 3, 0.9), run, "pass")
    assert sorted(store.ls(f"{flaky_root}/releases/2024-03/synthetic", detail=False)) == [
        f"{flaky_root}/releases/2024-03/synthetic/part-{k:05d}.parquet" for k in range(3)]

    # A later run whose gate passes with fewer parts: the extra old part goes.
    assert _release_and_upload(_staged_run(Path(run.output), 2, 0.8), run, "pass")
    assert len(store.ls(f"{flaky_root}/releases/2024-03/synthetic", detail=False)) == 2

    FlakyStore.calls.clear()
    assert _release_and_upload(_staged_run(Path(run.output), 2, 0.41), run, "fail") is None
    assert not (Path(run.output) / "synthetic").exists()
    assert not store.exists(f"{flaky_root}/releases/2024-03/synthetic/part-00000.parquet")
    assert store.find(f"{flaky_root}/releases/2024-03/synthetic") == []
    assert json.loads(store.cat(f"{flaky_root}/releases/2024-03/metrics.json")) == {"quality_score": 0.41}
    assert store.cat(f"{flaky_root}/releases/2024-03/model/model.pt") == b"weights 0.41"

    # The order a reader relies on: old manifest out, old release out, then the new files, manifest last.
    order = [(method, path.rsplit(flaky_root, 1)[-1]) for method, path in FlakyStore.calls if method in ("rm", "put_file")]
    assert order[0] == ("rm", "/releases/2024-03/manifest.json")
    assert {p for m, p in order[1:3]} == {f"/releases/2024-03/synthetic/part-{k:05d}.parquet" for k in range(2)}
    assert all(m == "rm" for m, _ in order[1:3]) and all(m == "put_file" for m, _ in order[3:])
    assert order[-1] == ("put_file", "/releases/2024-03/manifest.json")
