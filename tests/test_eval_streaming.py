"""The evaluation streams the synthetic table: same numbers as a table in memory, bounded memory, fsspec URIs.

"Synthetic" tables here are real rows resampled with their patients' rows scattered over
the table (so a patient spans batches and Parquet parts), some rows copied exactly: every
streamed check (exact copies, identifier values, patient summaries, date orders,
constraints, the seeded pool) then has something to count across batch boundaries.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synth.config import parse_config
from synth.demo.mimic import DEMO_CONFIG
from synth.evaluation import evaluate
from synth.holdout import split_holdout
from synth.pii.rules import generalised_table
from synth.io.scan import TableScan, read_sample
from synth.io.sources import read_table
from synth.config import load_config
from synth.schema import infer_schema
from tests.tables import identified_patients

SMALL = {"sample_rows": 600, "distance_rows": 200, "propensity_rows": 600, "attack_rows": 100,
         "attack_reference_rows": 800, "utility_rows": 600}


def _scattered(table: pa.Table, rows: int, seed: int) -> pa.Table:
    """``rows`` rows drawn from ``table`` with replacement, in random order (patients scattered)."""
    return table.take(pa.array(np.random.default_rng(seed).integers(0, table.num_rows, rows)))


def _write_parts(table: pa.Table, folder, parts: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, piece in enumerate(np.array_split(np.arange(table.num_rows), parts)):
        pq.write_table(table.take(pa.array(piece)), folder / f"part-{k:05d}.parquet", row_group_size=700)


def _comparable(metrics: dict) -> str:
    return json.dumps({k: v for k, v in metrics.items() if k != "timings"}, sort_keys=True, default=str)


@pytest.fixture(scope="module")
def mimic_case(mimic_table):
    config = load_config(DEMO_CONFIG).with_overrides(evaluation=SMALL)
    schema = infer_schema(mimic_table, config)
    train, holdout = split_holdout(mimic_table, schema, 0.3, seed=0)
    # Direct identifiers as the model sees them (generalised), so that every synthetic row copies a training row.
    return train, holdout, schema, config, _scattered(generalised_table(train, schema.direct_identifiers), 2_500, 1)


def test_streamed_in_small_batches_the_numbers_equal_the_table_in_memory(mimic_case, tmp_path):
    train, holdout, schema, config, synthetic = mimic_case
    _write_parts(synthetic, tmp_path / "synthetic", parts=3)
    run = dict(schema=schema, options=config.evaluation, seed=0, holdout=holdout, gate=config.gate,
               constraints=config.constraints)
    whole = evaluate(train, synthetic, **run)
    streamed = evaluate(train, TableScan(tmp_path / "synthetic", batch_rows=333), **run)
    assert _comparable(streamed) == _comparable(whole)
    # What was streamed found something to count: copies, patients spanning batches, date orders.
    assert streamed["exact_collisions"] == 2_500  # every row is a training row
    assert streamed["entities"]["synthetic"] == len(set(synthetic["subject_id"].to_pylist()))
    assert streamed["date_order"] and streamed["constraint_violations"]["rules"]
    assert streamed["timings"]["synthetic_pass"] >= 0


def test_identifier_values_are_found_in_any_batch(tmp_path):
    real = identified_patients(patients=200, seed=5).to_arrow()
    config = parse_config({"evaluation": SMALL, "entity_key": "nhs_number"})
    schema = infer_schema(real, config)
    synthetic = _scattered(real, 900, seed=2)
    _write_parts(synthetic, tmp_path / "synthetic", parts=4)
    whole = evaluate(real, synthetic, schema, config.evaluation, seed=0, gate=config.gate)
    streamed = evaluate(real, TableScan(tmp_path / "synthetic", batch_rows=101), schema, config.evaluation, seed=0,
                        gate=config.gate)
    assert _comparable(streamed) == _comparable(whole)
    copies = {c["column"]: c["real_values_in_synthetic"] for c in streamed["direct_identifiers"]}
    assert copies["nhs_number"] == len(set(synthetic["nhs_number"].to_pylist()))  # every one is a real value


def test_the_synthetic_table_is_never_held_whole(tmp_path, monkeypatch):
    """Every piece of synthetic data the evaluation touches is one batch or the seeded pool."""
    real = identified_patients(patients=300, seed=6).to_arrow()
    config = parse_config({"evaluation": SMALL, "entity_key": "nhs_number"})
    schema = infer_schema(real, config)
    _write_parts(_scattered(real, 30_000, seed=3), tmp_path / "synthetic", parts=5)
    seen = []
    batches = TableScan.batches

    def counted(self, columns=None):
        for batch in batches(self, columns):
            seen.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(TableScan, "batches", counted)
    metrics = evaluate(real, TableScan(tmp_path / "synthetic", batch_rows=2_000), schema, config.evaluation, seed=0,
                       gate=config.gate)
    assert metrics["rows"] == 30_000 and metrics["entities"]["synthetic"] == 300
    assert max(seen) <= 2_000 and sum(seen) >= 30_000  # every row read, never more than a batch at a time
    pool = max(SMALL.values())
    assert metrics["evaluation_sample_rows"]["synthetic"] <= pool
    assert metrics["membership_inference"]["synthetic_reference_rows"] <= pool


def test_peak_arrow_memory_stays_below_the_synthetic_table(tmp_path):
    """On a synthetic table far larger than the samples, Arrow's peak allocation is that of one batch and the pool.

    Arrow's memory pool counts every buffer Parquet decoding, casts and takes allocate; the
    process first reads the table whole once, to learn what holding it costs.
    """
    script = textwrap.dedent(f"""
        import json
        import numpy as np, pyarrow as pa, pyarrow.parquet as pq
        from synth.config import parse_config
        from synth.evaluation import evaluate
        from synth.io.scan import TableScan
        from synth.schema import infer_schema
        from tests.tables import identified_patients
        real = identified_patients(patients=300, seed=6).to_arrow()
        config = parse_config({{"evaluation": {json.dumps(SMALL)}, "entity_key": "nhs_number"}})
        schema = infer_schema(real, config)
        rng = np.random.default_rng(0)
        for k in range(6):
            part = real.take(pa.array(rng.integers(0, real.num_rows, 50_000)))
            pq.write_table(part, "{tmp_path}/part-%05d.parquet" % k, row_group_size=10_000)
        pool = pa.default_memory_pool()
        start = pool.max_memory()
        evaluate(real, TableScan("{tmp_path}", batch_rows=8_192), schema, config.evaluation, seed=0, gate=config.gate)
        streamed = pool.max_memory()
        whole = TableScan("{tmp_path}").take(np.arange(300_000))
        print(json.dumps({{"whole": whole.nbytes, "streamed": streamed - start}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["streamed"] < result["whole"] / 4, result  # a batch of 8,192 rows, not 300,000


def test_tables_behind_an_fsspec_uri_are_read_and_streamed(mimic_case):
    train, holdout, schema, config, synthetic = mimic_case
    fs = fsspec.filesystem("memory")
    for k, piece in enumerate(np.array_split(np.arange(synthetic.num_rows), 2)):
        with fs.open(f"/evalscan/synthetic/part-{k:05d}.parquet", "wb") as out:
            pq.write_table(synthetic.take(pa.array(piece)), out)
    with fs.open("/evalscan/real.parquet", "wb") as out:
        pq.write_table(train, out)
    with fs.open("/evalscan/holdout.csv", "wb") as out:
        out.write(b"a,b\n1,x\n2,y\n")
    assert read_table("memory://evalscan/real.parquet", config).num_rows == train.num_rows
    assert read_table("memory://evalscan/holdout.csv").to_pydict() == {"a": [1, 2], "b": ["x", "y"]}
    scan = TableScan("memory://evalscan/synthetic")
    assert scan.num_rows == synthetic.num_rows
    run = dict(schema=schema, options=config.evaluation, seed=0, holdout=holdout, gate=config.gate,
               constraints=config.constraints)
    assert _comparable(evaluate(train, scan, **run)) == _comparable(evaluate(train, synthetic, **run))


def test_a_table_above_the_cap_is_read_as_a_seeded_sample_of_whole_patients(mimic_table, tmp_path):
    _write_parts(mimic_table, tmp_path / "real", parts=3)
    config = parse_config({})
    sample = read_sample(tmp_path / "real", config, max_rows=4_000, seed=0, key="subject_id")
    assert 3_000 <= sample.num_rows <= 4_000
    assert sample.column_names == mimic_table.column_names
    counts = dict(zip(*np.unique(mimic_table["subject_id"].to_numpy(), return_counts=True)))
    kept = dict(zip(*np.unique(sample["subject_id"].to_numpy(), return_counts=True)))
    assert all(counts[k] == n for k, n in kept.items())  # patients whole
    again = read_sample(tmp_path / "real", config, max_rows=4_000, seed=0, key="subject_id")
    assert again.equals(sample)
    assert read_sample(tmp_path / "real", config, max_rows=20_000, seed=0).num_rows == mimic_table.num_rows
