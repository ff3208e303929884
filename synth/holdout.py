"""A real holdout the generator never sees, for privacy baselines and train-on-synthetic tests.

The split is by patient when the schema has an entity key (all of a patient's rows fall on
one side, so the holdout is truly unseen), by row otherwise. It is a pure function of the
data, the fraction and the seed, so the training and evaluation steps, run separately,
draw the same split.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synth.schema import Schema


def split_holdout(table: pa.Table, schema: Schema, fraction: float, seed: int) -> tuple[pa.Table, pa.Table]:
    """(training rows, holdout rows); ``fraction`` of the patients (or rows) are held out."""
    if fraction <= 0:
        return table, table.slice(0, 0)
    mask = holdout_mask(table, schema, fraction, seed)
    return table.filter(pa.array(~mask)), table.filter(pa.array(mask))


def holdout_mask(table: pa.Table, schema: Schema, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the held-out rows."""
    rng = np.random.default_rng([seed, 0x401D])  # its own stream: independent of training draws
    if schema.entity_key is None:
        n_holdout = int(round(table.num_rows * fraction))
        mask = np.zeros(table.num_rows, dtype=bool)
        mask[rng.permutation(table.num_rows)[:n_holdout]] = True
        return mask
    keys = table[schema.entity_key]
    patients = pc.unique(keys).sort()
    n_holdout = int(round(len(patients) * fraction))
    held = patients.take(pa.array(np.sort(rng.permutation(len(patients))[:n_holdout])))
    return pc.is_in(keys, value_set=held).to_numpy(zero_copy_only=False)
