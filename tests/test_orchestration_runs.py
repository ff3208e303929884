"""Tests for synth.runs, synth.manifest and synth.io.uri: work folders, locks, manifests, URIs."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from distributed import LocalCluster

from synth.config import PipelineConfig
from synth.errors import SourceError
from synth.io.uri import files_fingerprint, list_files, upload_folder
from synth.manifest import build_manifest, code_version, write_manifest
from synth.preprocess import preprocess, read_split
from synth.runs import LOCK, OutputLock, RunConflictError, open_work_dir, run_key


def test_run_key_follows_data_preprocessing_settings_and_output_only():
    config = PipelineConfig()
    key = run_key("data-a", config, "out/x")
    assert run_key("data-a", config.with_overrides(preprocess={"workers": 7}), "out/x") == key
    assert run_key("data-a", config.with_overrides(model={"epochs": 3}), "out/x") == key
    assert run_key("data-b", config, "out/x") != key
    assert run_key("data-a", config, "out/y") != key
    assert run_key("data-a", config.with_overrides(evaluation={"holdout_fraction": 0.3}), "out/x") != key


def test_work_folder_is_private_and_its_token_marks_its_incarnation(tmp_path):
    work = open_work_dir("abc", tmp_path)
    assert oct(os.stat(work.path).st_mode)[-3:] == "700"
    assert open_work_dir("abc", tmp_path).token == work.token
    (tmp_path / "abc" / ".token").unlink()
    assert open_work_dir("abc", tmp_path).token != work.token


def test_a_second_run_on_the_same_output_is_refused(tmp_path):
    with OutputLock(tmp_path, owner="flow run first"):
        with pytest.raises(RunConflictError, match="being written by another run \\(flow run first"):
            with OutputLock(tmp_path, owner="flow run second"):
                pass
    assert not (tmp_path / LOCK).exists()
    with OutputLock(tmp_path, owner="third"):  # free again once released
        pass


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    (tmp_path / LOCK).write_text(
        json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "owner": "crashed"})
    )
    with OutputLock(tmp_path, owner="next"):
        assert json.loads((tmp_path / LOCK).read_text())["owner"] == "next"


def test_manifest_lists_files_with_checksums_and_rows(tmp_path):
    pq.write_table(pa.table({"a": [1, 2, 3]}), tmp_path / "part-00000.parquet")
    (tmp_path / "metrics.json").write_text("{}")
    (tmp_path / LOCK).write_text("{}")
    manifest = build_manifest(
        tmp_path, run={"id": "r1"}, source={"uri": "x"}, schema={}, rows={"synthetic": 3}, model={}, privacy={}, gate={}
    )
    path = write_manifest(tmp_path, manifest)
    files = {f["path"]: f for f in json.loads(path.read_text())["files"]}
    assert set(files) == {"part-00000.parquet", "metrics.json"}  # not the lock, not itself
    assert files["part-00000.parquet"]["rows"] == 3
    assert files["metrics.json"]["sha256"] == hashlib.sha256(b"{}").hexdigest()
    assert manifest["versions"]["code"] == code_version() and len(code_version()) == 64


def test_uri_listing_fingerprint_and_upload_with_an_fsspec_store(tmp_path):
    memory = fsspec.filesystem("memory")
    for k in range(2):
        with memory.open(f"/extracts/2024/part-{k}.parquet", "wb") as out:
            pq.write_table(
                pa.table({"patient": [k * 10 + i for i in range(600)], "x": [float(i) for i in range(600)]}), out
            )
    files = list_files("memory://extracts/2024")
    assert [f.name for f in files] == ["part-0.parquet", "part-1.parquet"]
    before = files_fingerprint(files)
    assert files_fingerprint(list_files("memory://extracts/2024/*.parquet")) == before

    # An in-process cluster stands in for one that sees the object store; it also covers dask_address.
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        prepared = preprocess(
            "memory://extracts/2024",
            PipelineConfig(),
            tmp_path / "work",
            dask_address=cluster.scheduler_address,
            log=lambda _: None,
        )
    train, holdout = read_split(prepared.clean_dir)
    assert train.num_rows + holdout.num_rows == 1_200

    (tmp_path / "out" / "synthetic").mkdir(parents=True)
    (tmp_path / "out" / "synthetic" / "part-00000.parquet").write_bytes(b"parquet")
    (tmp_path / "out" / "manifest.json").write_text("{}")
    (tmp_path / "out" / LOCK).write_text("{}")
    written = upload_folder(tmp_path / "out", "memory://releases/2024-01")
    assert written[-1].endswith("manifest.json")  # last: readers wait for it
    assert not any(LOCK in w for w in written)
    assert memory.cat("/releases/2024-01/synthetic/part-00000.parquet") == b"parquet"


def test_missing_remote_protocol_package_names_the_extra():
    with pytest.raises(SourceError, match=r"synth-pipeline\[(s3|azure)\]|not found|no files"):
        list_files("s3://no-such-bucket-synth-tests/extract/*.parquet")
