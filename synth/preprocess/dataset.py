"""Reading the clean dataset: the holdout split, and a bounded training sample.

The clean dataset is ``train/part-K.parquet`` and ``holdout/part-K.parquet`` for every
partition *k*. Training reads at most ``max_rows`` rows: a seeded uniform sample of the training
split (of whole patients, when there is a patient key), gathered one part at a time so
memory holds the sample and one part.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from synth.holdout import unit_hash

_TRAINING_STREAM = 0x7EA1
PLAN = "_plan.json"  # the clean dataset's plan: its version and patient key


def read_split(clean_dir: str | Path, columns: list[str] | None = None) -> tuple[pa.Table, pa.Table]:
    """(training rows, holdout rows) of a clean dataset, whole."""
    return _read(clean_dir, "train", columns), _read(clean_dir, "holdout", columns)


def training_sample(clean_dir: str | Path, max_rows: int, seed: int, columns: list[str] | None = None) -> pa.Table:
    """At most ``max_rows`` training rows: all of them, or a seeded uniform sample.

    Each row gets a seeded key, the same for all rows of a patient when the dataset has a
    patient key (a patient is kept whole or not at all). Training and evaluation calling
    this with the same arguments get the same rows. Rows whose key is below a slightly
    generous threshold are gathered part by part, then those below the key that would
    make ``max_rows`` overall: a uniform sample of rows (or of patients) without holding
    the whole split in memory.
    """
    parts = _parts(clean_dir, "train")
    total = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
    if total <= max_rows:
        return _read(clean_dir, "train", columns)
    threshold = min(1.0, max_rows / total * 1.05 + 1_000 / total)
    entity_key = json.loads((Path(clean_dir) / PLAN).read_text()).get("entity_key")
    kept, keys = [], []
    for part in parts:
        table = pq.read_table(
            part, columns=columns if columns is None or entity_key is None else _with(columns, entity_key)
        )
        if entity_key is not None:
            draw = unit_hash(table[entity_key], [seed, _TRAINING_STREAM])
        else:
            index = int(part.stem.rsplit("-", 1)[1])
            draw = np.random.default_rng([seed, _TRAINING_STREAM, index]).random(table.num_rows)
        chosen = np.flatnonzero(draw < threshold)
        kept.append(table.take(pa.array(chosen)).select(columns or table.column_names))
        keys.append(draw[chosen])
    sample, draws = pa.concat_tables(kept), np.concatenate(keys)
    if len(draws) <= max_rows:
        return sample
    cutoff = np.partition(draws, max_rows)[max_rows]  # the smallest key left out
    return sample.filter(pa.array(draws < cutoff))


def _with(columns: list[str], name: str) -> list[str]:
    return columns if name in columns else [*columns, name]


def _read(clean_dir: str | Path, split: str, columns: list[str] | None) -> pa.Table:
    parts = _parts(clean_dir, split)
    if not parts:
        raise FileNotFoundError(f"no {split} parts in {clean_dir}")
    return ds.dataset([str(p) for p in parts], format="parquet").to_table(columns=columns)


def _parts(clean_dir: str | Path, split: str) -> list[Path]:
    return sorted((Path(clean_dir) / split).glob("part-*.parquet"))
