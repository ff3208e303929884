"""Chunked sampling: reproducible bytes, resumable parts, bounded memory."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from synth.config import parse_config
from synth.errors import ModelError
from synth.io.sources import read_table
from synth.models import get_synthesizer
from synth.sampling import sample_to_parquet
from synth.schema import infer_schema


@pytest.fixture(scope="module")
def model(heart_csv, tmp_path_factory):
    config = parse_config({"model": {"epochs": 2}})
    table = read_table(heart_csv, config)
    fitted = get_synthesizer("vae")(config).fit(table, infer_schema(table, config))
    folder = tmp_path_factory.mktemp("model") / "model"
    fitted.save(folder)
    return fitted, folder


def _bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("part-*.parquet"))}


def test_same_seed_gives_the_same_bytes(model, tmp_path):
    fitted, _ = model
    a = sample_to_parquet(fitted, 2_500, tmp_path / "a", seed=11, chunk_rows=1_000)
    sample_to_parquet(fitted, 2_500, tmp_path / "b", seed=11, chunk_rows=1_000)
    assert a.chunks == 3 and a.written == [0, 1, 2]
    assert _bytes(tmp_path / "a") == _bytes(tmp_path / "b")
    assert ds.dataset(tmp_path / "a").count_rows() == 2_500
    c = sample_to_parquet(fitted, 2_500, tmp_path / "c", seed=12, chunk_rows=1_000)
    assert _bytes(tmp_path / "c") != _bytes(tmp_path / "a") and c.rows == 2_500


def test_a_loaded_model_samples_the_same_bytes(model, tmp_path):
    fitted, folder = model
    loaded = type(fitted).load(folder)
    sample_to_parquet(fitted, 1_500, tmp_path / "a", seed=3, chunk_rows=1_000)
    sample_to_parquet(loaded, 1_500, tmp_path / "b", seed=3, chunk_rows=1_000)
    assert _bytes(tmp_path / "a") == _bytes(tmp_path / "b")


def test_rerun_rewrites_only_missing_parts_and_ids_stay_unique(model, tmp_path):
    fitted, _ = model
    out = tmp_path / "parts"
    sample_to_parquet(fitted, 3_000, out, seed=5, chunk_rows=1_000)
    before = _bytes(out)
    (out / "part-00001.parquet").unlink()
    (out / ".tmp-part-00002.parquet.x").write_text("left by a crash")
    again = sample_to_parquet(fitted, 3_000, out, seed=5, chunk_rows=1_000)
    assert again.written == [1] and again.skipped == [0, 2]
    assert _bytes(out) == before
    assert not list(out.glob(".tmp-*"))


def test_a_different_plan_never_mixes_with_old_parts(model, tmp_path):
    fitted, _ = model
    out = tmp_path / "parts"
    sample_to_parquet(fitted, 3_000, out, seed=5, chunk_rows=1_000)
    result = sample_to_parquet(fitted, 1_200, out, seed=6, chunk_rows=1_000)
    assert result.written == [0, 1] and sorted(p.name for p in out.glob("part-*")) == [
        "part-00000.parquet",
        "part-00001.parquet",
    ]
    assert json.loads((out / "_sampling.json").read_text())["seed"] == 6
    assert ds.dataset(out).count_rows() == 1_200


@pytest.mark.slow
def test_sampling_a_million_rows_stays_under_a_fixed_memory_bound(model, tmp_path):
    _, folder = model
    script = textwrap.dedent(
        f"""
        import resource, sys
        from synth.models import get_synthesizer
        from synth.sampling import sample_to_parquet
        model = get_synthesizer("vae").load({str(folder)!r})
        rows = int(sys.argv[1])
        sample_to_parquet(model, rows, {str(tmp_path)!r} + "/out" + sys.argv[1], seed=0, chunk_rows=50_000)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
        """
    )
    peak = {}
    for rows in (100_000, 1_000_000):
        done = subprocess.run([sys.executable, "-c", script, str(rows)], capture_output=True, text=True, check=True)
        peak[rows] = int(done.stdout.split()[-1])
    assert ds.dataset(tmp_path / "out1000000").count_rows() == 1_000_000
    assert peak[1_000_000] < 2_048, peak  # MiB (torch alone is ~400): the bound does not depend on the rows...
    assert peak[1_000_000] < peak[100_000] * 1.15, peak  # ...10x the rows, the same peak


# -- chunks over worker processes and a Dask cluster: the same bytes whatever writes them ---------------
def test_one_two_and_three_worker_processes_write_the_same_bytes(model, tmp_path):
    fitted, folder = model
    progress = {}
    for workers in (1, 2, 3):
        calls = progress[workers] = []
        result = sample_to_parquet(
            fitted if workers == 1 else None, 4_500, tmp_path / str(workers), seed=7, chunk_rows=1_000,
            workers=workers, model_dir=folder, on_chunk=lambda done, total, calls=calls: calls.append((done, total)),
        )
        assert result.written == [0, 1, 2, 3, 4] and result.skipped == []
        assert calls == [(done, 5) for done in range(1, 6)]  # reported in this process as parts land
    assert _digests(tmp_path / "1") == _digests(tmp_path / "2") == _digests(tmp_path / "3")
    assert len(_digests(tmp_path / "1")) == 5 and ds.dataset(tmp_path / "3").count_rows() == 4_500


def test_a_dask_cluster_of_two_worker_processes_writes_the_same_bytes(model, tmp_path):
    from distributed import LocalCluster

    fitted, folder = model
    sample_to_parquet(fitted, 3_500, tmp_path / "here", seed=9, chunk_rows=1_000)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        result = sample_to_parquet(
            None, 3_500, tmp_path / "dask", seed=9, chunk_rows=1_000, dask_address=cluster.scheduler_address,
            model_dir=folder,
        )
    assert result.written == [0, 1, 2, 3]
    assert _digests(tmp_path / "dask") == _digests(tmp_path / "here")
    assert json.loads((tmp_path / "dask" / "_sampling.json").read_text())["seed"] == 9


def test_a_failing_worker_fails_the_run_with_its_error_and_leaves_no_half_written_part(model, tmp_path):
    _, folder = model
    out = tmp_path / "parts"
    out.mkdir()
    (out / "part-00002.parquet").mkdir()  # chunk 2's worker cannot put its part there
    with pytest.raises(OSError, match="part-00002.parquet"):
        sample_to_parquet(None, 5_000, out, seed=4, chunk_rows=1_000, workers=2, model_dir=folder)
    assert not list(out.glob(".tmp-*"))
    for part in out.glob("part-*.parquet"):  # whatever landed before the failure is whole
        assert part.is_dir() or pq.ParquetFile(part).metadata.num_rows == 1_000
    # A model folder a worker cannot load: its own error (type and message) reaches the caller.
    with pytest.raises(ModelError, match="model folder not found"):
        sample_to_parquet(None, 2_000, tmp_path / "other", seed=4, chunk_rows=1_000, workers=2,
                          model_dir=tmp_path / "no-model")


def test_a_rerun_on_workers_writes_only_the_missing_parts(model, tmp_path):
    fitted, folder = model
    out = tmp_path / "parts"
    sample_to_parquet(fitted, 3_000, out, seed=5, chunk_rows=1_000)
    before = _digests(out)
    (out / "part-00001.parquet").unlink()
    calls = []
    again = sample_to_parquet(
        None, 3_000, out, seed=5, chunk_rows=1_000, workers=3, model_dir=folder,
        on_chunk=lambda done, total: calls.append((done, total)),
    )
    assert again.written == [1] and again.skipped == [0, 2]  # one chunk for three workers: fine
    assert calls == [(2, 3), (3, 3)]
    assert _digests(out) == before


def test_sampling_on_workers_needs_the_model_folder(model, tmp_path):
    fitted, _ = model
    with pytest.raises(ValueError, match="model_dir"):
        sample_to_parquet(fitted, 1_000, tmp_path, workers=2)


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("part-*.parquet"))}
