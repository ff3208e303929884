"""Chunked sampling: reproducible bytes, resumable parts, bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pyarrow.dataset as ds
import pytest

from synth.config import parse_config
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
