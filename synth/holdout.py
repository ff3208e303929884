"""A real holdout the generator never sees, for privacy baselines and train-on-synthetic tests.

The split is by patient when the schema has an entity key (all of a patient's rows fall on
one side, so the holdout is truly unseen), by row otherwise. A row is held out when a
seeded, stable hash of its patient key (or of its row number in the extract) falls below
``fraction``. That makes the split a pure function of each row's key, the fraction and
the seed: the partitions of a large extract are split independently, in parallel, and
agree with a split of the whole table; the training and evaluation steps, run separately
(even on other machines or library versions), draw the same split. The held-out share
is ``fraction`` in expectation, not exactly (a binomial draw over patients).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synth.schema import Schema

_STREAM = 0x401D  # the holdout's own stream: independent of every other seeded draw
_NULL_KEY = np.uint64(0x6E756C6C)


def split_holdout(
    table: pa.Table, schema: Schema, fraction: float, seed: int, first_row: int = 0
) -> tuple[pa.Table, pa.Table]:
    """(training rows, holdout rows); about ``fraction`` of the patients (or rows) are held out.

    Args:
        table: the extract, or one partition of it.
        schema: gives the entity key (patient), if any.
        fraction: share of patients (or rows) held out.
        seed: the run's seed.
        first_row: the number of the table's first row in the whole extract (for a partition
            of an extract without a patient key).
    """
    if fraction <= 0:
        return table, table.slice(0, 0)
    mask = pa.array(holdout_mask(table, schema, fraction, seed, first_row))
    return table.filter(pc.invert(mask)), table.filter(mask)


def holdout_mask(table: pa.Table, schema: Schema, fraction: float, seed: int, first_row: int = 0) -> np.ndarray:
    """Boolean mask of the held-out rows."""
    if schema.entity_key is None:
        keys = pa.array(np.arange(first_row, first_row + table.num_rows, dtype=np.int64))
    else:
        keys = table[schema.entity_key]
    return unit_hash(keys, [seed, _STREAM]) < fraction


def unit_hash(values: pa.Array | pa.ChunkedArray, seed: int | list[int]) -> np.ndarray:
    """A stable, seeded hash of each value mapped to [0, 1): equal values, equal numbers.

    Integers, dates and times are mixed with SplitMix64 (vectorised); text is hashed with
    BLAKE2b once per distinct value. Nulls hash like one value. The result depends only on
    the values and the seed, never on the library versions or the machine.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks else pa.array([], values.type)
    salt = _seed_word(seed)
    dtype = values.type
    if pa.types.is_dictionary(dtype):
        values, dtype = values.cast(dtype.value_type), dtype.value_type
    if pa.types.is_floating(dtype) and _all_integral(values):
        values, dtype = pc.cast(values, pa.int64()), pa.int64()
    if pa.types.is_integer(dtype) or pa.types.is_temporal(dtype) or pa.types.is_boolean(dtype):
        words = pc.cast(values, pa.int64()).fill_null(0).to_numpy(zero_copy_only=False).view(np.uint64)
    elif pa.types.is_floating(dtype):
        words = pc.cast(values, pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False).view(np.uint64)
    else:
        words = _text_words(pc.cast(values, pa.string()), salt)
    words = np.where(pc.is_null(values).to_numpy(zero_copy_only=False), _NULL_KEY, words)
    mixed = _splitmix64(_splitmix64(words ^ salt))
    return (mixed >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _text_words(values: pa.Array, salt: np.uint64) -> np.ndarray:
    encoded = pc.dictionary_encode(values)
    key = int(salt).to_bytes(8, "little")
    distinct = [
        int.from_bytes(hashlib.blake2b((v or "").encode(), digest_size=8, key=key).digest(), "little")
        for v in encoded.dictionary.to_pylist()
    ]
    table = np.array(distinct, dtype=np.uint64)
    indices = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)
    return table[indices] if len(table) else np.zeros(len(values), dtype=np.uint64)


def _seed_word(seed: int | list[int]) -> np.uint64:
    words = seed if isinstance(seed, list) else [seed]
    state = np.uint64(0)
    for word in words:
        state = _splitmix64(np.array([state ^ np.uint64(word & 0xFFFFFFFFFFFFFFFF)], dtype=np.uint64))[0]
    return state


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (Steele, Lea & Flood 2014): a bijection that scrambles all 64 bits."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _all_integral(values: pa.Array) -> bool:
    valid = pc.drop_null(values)
    if len(valid) == 0:
        return True
    finite = pc.all(pc.is_finite(valid)).as_py()
    return bool(finite) and pc.all(pc.equal(pc.floor(valid), valid)).as_py()
