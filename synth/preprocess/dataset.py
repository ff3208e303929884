"""Reading the clean dataset: bounded samples of the training and holdout splits.

The clean dataset is ``train/part-K.parquet`` and ``holdout/part-K.parquet`` for every
partition *k*. Training reads at most ``max_rows`` rows: a seeded uniform sample of the training
split (of whole patients, when there is a patient key), gathered one part at a time so
memory holds the sample and one part. The evaluation reads the same training sample and a
sample of the holdout drawn the same way (:func:`holdout_sample`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from synth.holdout import unit_hash
from synth.io.scan import keep_lowest

_TRAINING_STREAM = 0x7EA1
_HOLDOUT_STREAM = 0x401E
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
    return _split_sample(clean_dir, "train", max_rows, [seed, _TRAINING_STREAM], columns)


def holdout_sample(clean_dir: str | Path, max_rows: int, seed: int, columns: list[str] | None = None) -> pa.Table:
    """At most ``max_rows`` holdout rows: all of them, or a seeded sample of whole patients (as
    :func:`training_sample`, on its own random stream)."""
    return _split_sample(clean_dir, "holdout", max_rows, [seed, _HOLDOUT_STREAM], columns)


def _split_sample(clean_dir: str | Path, split: str, max_rows: int, stream: list[int],
                  columns: list[str] | None) -> pa.Table:
    parts = _parts(clean_dir, split)
    total = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
    if total <= max_rows:
        return _read(clean_dir, split, columns)
    entity_key = json.loads((Path(clean_dir) / PLAN).read_text()).get("entity_key")
    chunks = []
    for part in parts:
        table = pq.read_table(
            part, columns=columns if columns is None or entity_key is None else _with(columns, entity_key)
        )
        if entity_key is not None:
            draw = unit_hash(table[entity_key], stream)
        else:
            index = int(part.stem.rsplit("-", 1)[1])
            draw = np.random.default_rng([*stream, index]).random(table.num_rows)
        # Only the rows that can make the sample stay in memory with the next part.
        chunks = [keep_lowest([*chunks, (table.select(columns or table.column_names), draw)], total, max_rows,
                              final=False)]
    return keep_lowest(chunks, total, max_rows)[0]


def _with(columns: list[str], name: str) -> list[str]:
    return columns if name in columns else [*columns, name]


def _read(clean_dir: str | Path, split: str, columns: list[str] | None) -> pa.Table:
    parts = _parts(clean_dir, split)
    if not parts:
        raise FileNotFoundError(f"no {split} parts in {clean_dir}")
    return ds.dataset([str(p) for p in parts], format="parquet").to_table(columns=columns)


def _parts(clean_dir: str | Path, split: str) -> list[Path]:
    return sorted((Path(clean_dir) / split).glob("part-*.parquet"))
