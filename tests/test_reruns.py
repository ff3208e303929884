"""Reruns are idempotent: an expectation suite edited in place is checked again.

* The preprocessing cache key and the run key hold the expectation suite's *content*: a
  suite edited in place gives a fresh verdict, not the cached one (real Prefect cache).
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prefect import flow

from synth.config import PipelineConfig
from synth.runs import open_work_dir, preprocess_settings, run_key
from tasks.caching import RunInputs
from tasks.preprocess import fingerprint_source, preprocess_extract

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

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as local:
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

