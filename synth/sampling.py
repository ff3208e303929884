"""Chunked generation straight to a Parquet dataset: bounded memory, reproducible, resumable.

``rows`` are generated in chunks of ``chunk_rows``; chunk *k* gets its own seed,
``SeedSequence(seed).spawn(n)[k]``, so any chunk can be regenerated alone and a rerun
produces the same bytes. Each chunk is one ``part-KKKKK.parquet`` written atomically.
A ``_sampling.json`` beside the parts records what they were made from; a rerun with the
same model, seed and sizes skips the parts already on disk, and anything else clears the
folder's old parts first so runs never mix.

Because chunk *k* depends only on (model, seed, *k*), the chunks can be written anywhere:
in this process, in ``workers`` local worker processes (spawned; each loads the saved model
from its folder once and runs torch on one thread), or on an existing Dask cluster
(``dask_address``; its workers must have this package installed and read the model folder
and the output folder). The bytes are the same in every case; only the order the parts
appear in differs. Start such a cluster's workers without the ``MALLOC_TRIM_THRESHOLD_`` Dask's
nannies set by default (``distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_: null``
in its Dask config): it turns off glibc's adaptive mmap threshold, and a worker then samples
at about 56% of its rate (``benchmarks/sample.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Set
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from synth.crashpoints import crash_point
from synth.errors import SynthError
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


@dataclass(frozen=True)
class _Chunk:
    """One part to write: chunk ``k`` of ``n`` rows, its seed, and its first row's number."""

    k: int
    n: int
    seed: np.random.SeedSequence
    start: int


def sample_to_parquet(
    synthesizer: Synthesizer | None,
    rows: int,
    folder: str | Path,
    seed: int = 0,
    chunk_rows: int = 100_000,
    fingerprint: str = "",
    on_chunk: ChunkCallback | None = None,
    avoid: Mapping[str, Set[str]] | None = None,
    workers: int = 1,
    dask_address: str | None = None,
    model_dir: str | Path | None = None,
) -> SampleResult:
    """Write ``rows`` synthetic rows as Parquet parts under ``folder``.

    Args:
        synthesizer: a fitted (or loaded) model; used only when the chunks are written in
            this process (``workers`` 1, no ``dask_address``), else may be ``None``.
        rows: total rows to generate.
        folder: the dataset folder (created if missing).
        seed: the run's seed; chunk seeds are spawned from it.
        chunk_rows: rows per part; memory is bounded by this, not by ``rows``.
        fingerprint: identifies the model (e.g. a hash of its weights); parts made from
            another model are never reused.
        on_chunk: progress callback, called in this process as parts are done.
        avoid: real values fake identifiers must not take (see :meth:`Synthesizer.sample`).
        workers: local worker processes writing chunks at once; 1 writes them in this process.
        dask_address: an existing Dask scheduler to map the chunks over instead (``workers`` is
            then ignored: the cluster has its own).
        model_dir: the saved model's folder, which worker processes load; required with
            ``workers`` > 1 or ``dask_address``.

    Raises:
        SynthError: a worker failed with an error the user can act on (raised as it was);
            any other failure of a worker is raised too. Parts already written stay (a rerun
            skips them); none is ever half-written.
    """
    if rows < 1 or chunk_rows < 1:
        raise ValueError("rows and chunk_rows must be at least 1")
    if workers < 1:
        raise ValueError("workers must be at least 1")
    parallel = workers > 1 or bool(dask_address)
    if parallel and model_dir is None:
        raise ValueError("sampling in worker processes needs model_dir, the folder they load the model from")
    if not parallel and synthesizer is None:
        raise ValueError("sampling in this process needs the synthesizer")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder)
    chunks = math.ceil(rows / chunk_rows)
    plan = {"rows": rows, "chunk_rows": chunk_rows, "seed": seed, "model": fingerprint, "format": 2}
    _reset_unless_same_plan(folder, plan)

    seeds = np.random.SeedSequence(seed).spawn(chunks)
    result = SampleResult(folder=str(folder), rows=rows, chunks=chunks)
    start = time.perf_counter()
    todo = []
    for k in range(chunks):
        n = min(chunk_rows, rows - k * chunk_rows)
        if _complete_part(folder / PART.format(k), n):
            result.skipped.append(k)
        else:
            todo.append(_Chunk(k, n, seeds[k], k * chunk_rows))
    if result.skipped and on_chunk is not None:
        on_chunk(len(result.skipped), chunks)

    if parallel:  # absolute: a worker's working folder need not be this process's
        model_dir, folder = Path(model_dir).absolute(), folder.absolute()
    if dask_address:
        written = _on_dask(dask_address, todo, folder, str(model_dir), fingerprint, avoid)
    elif workers > 1:
        written = _in_processes(min(workers, len(todo)), todo, folder, str(model_dir), fingerprint, avoid)
    else:
        written = (_write_chunk(synthesizer, folder, chunk, avoid) for chunk in todo)
    with contextlib.closing(written):  # on any error here too, the workers are stopped before it is raised
        for k in written:
            result.written.append(k)
            crash_point("sample.chunk")  # in this process: workers inherit the environment but never crash
            if on_chunk is not None:
                on_chunk(len(result.skipped) + len(result.written), chunks)
    result.written.sort()
    result.seconds = time.perf_counter() - start
    return result


def _write_chunk(synthesizer: Synthesizer, folder: Path, chunk: _Chunk, avoid: Mapping[str, Set[str]] | None) -> int:
    path = folder / PART.format(chunk.k)
    write_parquet_atomic(path, synthesizer.sample(chunk.n, chunk.seed, start=chunk.start, avoid=avoid))
    return chunk.k


# -- in worker processes (local or Dask) ----------------------------------------------------------------
_loaded: dict[tuple[str, str], Synthesizer] = {}  # in a worker: the model, by (folder, fingerprint), loaded once
_loading = threading.Lock()  # a Dask worker may run tasks on several threads
_avoid: dict = {}  # in a local worker: the values fakes avoid, sent once by the pool's initializer


def _write_chunk_in_worker(
    chunk: _Chunk, folder: str, model_dir: str, fingerprint: str, avoid: Mapping[str, Set[str]] | None
) -> int:
    """Load the model once per worker process (a load error is raised as it is, naming the folder), write one part."""
    import torch

    from synth.models import load_synthesizer

    with _loading:
        key = (model_dir, fingerprint)
        if key not in _loaded:
            torch.set_num_threads(1)  # n workers on n cores: an OpenMP team per worker would oversubscribe them
            _loaded.clear()  # one model at a time: a long-lived Dask worker does not collect them
            _loaded[key] = load_synthesizer(model_dir)
        synthesizer = _loaded[key]
    return _write_chunk(synthesizer, Path(folder), chunk, _avoid.get("values") if avoid is None else avoid)


def _start_local_worker(avoid: Mapping[str, Set[str]] | None) -> None:
    _avoid["values"] = avoid


def _in_processes(
    workers: int,
    todo: list[_Chunk],
    folder: Path,
    model_dir: str,
    fingerprint: str,
    avoid: Mapping[str, Set[str]] | None,
) -> Iterator[int]:
    """Write ``todo`` in ``workers`` spawned processes; yield each chunk's number as its part lands.

    The first failure cancels the chunks not started, waits for the running ones (each
    finishes its part or leaves only a temporary file, removed here) and is raised.
    """
    if not todo:
        return
    # spawn, not fork: the parent holds torch's and Prefect's threads, which fork does not copy safely.
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_local_worker,
        initargs=(avoid,),
    )
    try:
        futures = [
            pool.submit(_write_chunk_in_worker, chunk, str(folder), model_dir, fingerprint, None) for chunk in todo
        ]
        for future in as_completed(futures):
            try:
                yield future.result()
            except BrokenProcessPool as error:
                raise SynthError(
                    f"a sampling worker process died while writing parts under {folder} ({error}); the parts "
                    "written so far are kept: run again to write the rest"
                ) from error
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        remove_stale_temporaries(folder)


def _on_dask(
    address: str,
    todo: list[_Chunk],
    folder: Path,
    model_dir: str,
    fingerprint: str,
    avoid: Mapping[str, Set[str]] | None,
) -> Iterator[int]:
    """Map ``todo`` over the Dask cluster at ``address``; yield each chunk's number as its part lands."""
    if not todo:
        return
    from synth.preprocess.cluster import dask_client, iter_partitions  # distributed only when asked for

    with dask_client(address) as client:
        # One copy per worker, not one per chunk (in a list: a dict would be scattered value by value).
        shared = client.scatter([dict(avoid)], broadcast=True)[0] if avoid else None
        for _, k in iter_partitions(client, _write_chunk_in_worker, todo, str(folder), model_dir, fingerprint, shared):
            yield k


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
