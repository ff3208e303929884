"""Chunked generation straight to a Parquet dataset: bounded memory, reproducible, resumable.

``rows`` are generated in chunks of ``chunk_rows``; chunk *k* gets its own seed,
``SeedSequence(seed).spawn(n)[k]``, so any chunk can be regenerated alone and a rerun
produces the same bytes. Each chunk is one ``part-KKKKK.parquet`` written atomically.
A ``_sampling.json`` beside the parts records what they were made from; a rerun with the
same model, seed and sizes skips the parts already on disk, and anything else clears the
folder's old parts first so runs never mix.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping, Set
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from synth.crashpoints import crash_point
from synth.io.atomic import remove_stale_temporaries, write_json_atomic, write_parquet_atomic
from synth.models.base import Synthesizer
from synth.pii.rules import drawn_fakes, values_to_avoid

MANIFEST = "_sampling.json"
PART = "part-{:05d}.parquet"

ChunkCallback = Callable[[int, int], None]  # (chunks done, chunks in all)


@dataclass
class SampleResult:
    """Where the parts are and how long they took."""

    folder: str
    rows: int
    chunks: int
    written: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def sample_to_parquet(
    synthesizer: Synthesizer,
    rows: int,
    folder: str | Path,
    seed: int = 0,
    chunk_rows: int = 100_000,
    fingerprint: str = "",
    on_chunk: ChunkCallback | None = None,
    avoid: Mapping[str, Set[str]] | None = None,
) -> SampleResult:
    """Write ``rows`` synthetic rows as Parquet parts under ``folder``.

    Args:
        synthesizer: a fitted (or loaded) model.
        rows: total rows to generate.
        folder: the dataset folder (created if missing).
        seed: the run's seed; chunk seeds are spawned from it.
        chunk_rows: rows per part; memory is bounded by this, not by ``rows``.
        fingerprint: identifies the model (e.g. a hash of its weights); parts made from
            another model are never reused.
        on_chunk: progress callback.
        avoid: real values fake identifiers must not take (see :meth:`Synthesizer.sample`).
    """
    if rows < 1 or chunk_rows < 1:
        raise ValueError("rows and chunk_rows must be at least 1")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder)
    chunks = math.ceil(rows / chunk_rows)
    plan = {"rows": rows, "chunk_rows": chunk_rows, "seed": seed, "model": fingerprint, "format": 1}
    _reset_unless_same_plan(folder, plan)

    seeds = np.random.SeedSequence(seed).spawn(chunks)
    result = SampleResult(folder=str(folder), rows=rows, chunks=chunks)
    start = time.perf_counter()
    for k in range(chunks):
        n = min(chunk_rows, rows - k * chunk_rows)
        path = folder / PART.format(k)
        if _complete_part(path, n):
            result.skipped.append(k)
        else:
            write_parquet_atomic(path, synthesizer.sample(n, seeds[k], start=k * chunk_rows, avoid=avoid))
            result.written.append(k)
            crash_point("sample.chunk")
        if on_chunk is not None:
            on_chunk(k + 1, chunks)
    result.seconds = time.perf_counter() - start
    return result


def model_fingerprint(model_folder: str | Path) -> str:
    """SHA-256 over a model folder's files (names and bytes), for reuse decisions."""
    digest = hashlib.sha256()
    for path in sorted(Path(model_folder).iterdir()):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _reset_unless_same_plan(folder: Path, plan: dict) -> None:
    manifest = folder / MANIFEST
    if manifest.is_file():
        try:
            if json.loads(manifest.read_text()) == plan:
                return
        except json.JSONDecodeError:
            pass
    for old in folder.glob("part-*.parquet"):
        old.unlink()
    write_json_atomic(manifest, plan)


def _complete_part(path: Path, rows: int) -> bool:
    if not path.is_file():
        return False
    try:
        return pq.ParquetFile(path).metadata.num_rows == rows
    except Exception:  # a corrupt part is simply written again
        return False


def fakes_to_avoid(synthesizer: Synthesizer, real_dir: str | None) -> dict[str, frozenset[str]]:
    """The real values the fake names, phones, ids ... must not take, read from the clean real rows.

    None under DP: there the fakes come from namespaces no real value reaches, never from a
    comparison with the real data (which the budget did not pay for); none without ``real_dir``.
    """
    drawn = drawn_fakes(synthesizer.schema_.direct_identifiers)
    if not drawn or synthesizer.config.privacy.enabled or not real_dir:
        return {}
    from synth.preprocess import read_split  # the clean dataset's reader (Dask, GX) only when real rows are read

    return values_to_avoid(list(read_split(real_dir, columns=[r.column for r in drawn])), drawn)
