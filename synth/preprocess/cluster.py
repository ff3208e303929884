"""The Dask cluster partitions run on: a local one by default, or an existing one by address.

The local cluster has one single-threaded worker *process* per core (pandas and Great
Expectations hold the GIL, so threads would not run in parallel), and each worker's
Polars, Arrow and BLAS pools are held to one thread so ``n`` workers use ``n`` cores.
On an existing cluster (``tcp://scheduler:8786``, e.g. Dask on Kubernetes) the workers
must have this package installed and see the source and the work folder (shared storage
or object-store URIs).

The cluster's own INFO lines (scheduler start, nanny, worker registration, connections)
are not the pipeline's progress: they are held back unless ``verbose`` is set.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from distributed import Client, LocalCluster, as_completed

from synth.errors import SynthError

T = TypeVar("T")
MAX_DEFAULT_WORKERS = 8
_ONE_THREAD = {
    "POLARS_MAX_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "GX_ANALYTICS_ENABLED": "False",
}


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS))


@contextlib.contextmanager
def dask_client(address: str | None = None, workers: int | None = None, verbose: bool = False) -> Iterator[Client]:
    """A client of the cluster at ``address``, or of a new local cluster of ``workers`` processes.

    Args:
        address: an existing scheduler; a local cluster is started (and closed) when unset.
        workers: worker processes of the local cluster (default: the CPU count, at most 8).
        verbose: let Dask's and distributed's INFO lines through (warnings and errors always are).
    """
    with _quiet("distributed", logging.INFO if verbose else logging.WARNING):
        if address:
            with Client(address, timeout="30s") as client:
                yield client
            return
        cluster = LocalCluster(
            n_workers=workers or default_workers(),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.INFO if verbose else logging.ERROR,
            env=_ONE_THREAD,
        )
        try:
            with Client(cluster) as client:
                yield client
        finally:
            with _quiet("distributed", logging.CRITICAL):  # workers' goodbyes race the scheduler's: harmless
                cluster.close()


@contextlib.contextmanager
def _quiet(name: str, level: int) -> Iterator[None]:
    """Log ``name`` (and its children) at ``level`` for the duration."""
    logger = logging.getLogger(name)
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)


def map_partitions(
    client: Client,
    function: Callable[..., T],
    items: Iterable[Any],
    *args: Any,
    on_result: Callable[[int, int], None] | None = None,
) -> list[T]:
    """``function(item, *args)`` for every item on the cluster, results in item order."""
    results = dict(iter_partitions(client, function, items, *args, on_result=on_result))
    return [results[n] for n in sorted(results)]


def iter_partitions(
    client: Client,
    function: Callable[..., T],
    items: Iterable[Any],
    *args: Any,
    on_result: Callable[[int, int], None] | None = None,
) -> Iterator[tuple[int, T]]:
    """``(position, function(item, *args))`` for every item, as results arrive.

    Each result is released on the cluster once yielded, so a caller that folds results
    as they come (the bounded sample) holds one at a time. The first failure cancels the
    rest and is raised as it was raised on the worker. ``on_result(done, total)`` reports
    progress.
    """
    futures = [client.submit(_returning_user_errors, function, item, *args, pure=False) for item in items]
    position = {f.key: n for n, f in enumerate(futures)}
    try:
        for done, future in enumerate(as_completed(futures), start=1):
            result = future.result()
            future.release()
            if isinstance(result, _UserError):
                raise result.error
            if on_result is not None:
                on_result(done, len(futures))
            yield position[future.key], result
    except BaseException:
        client.cancel(futures)
        raise


class _UserError:
    """A :class:`SynthError` a worker hit, carried back as a result (see :func:`_returning_user_errors`)."""

    def __init__(self, error: SynthError):
        self.error = error


def _returning_user_errors(function: Callable[..., T], *args: Any) -> T | _UserError:
    # A task that raises is logged by its worker as "Compute Failed" with a traceback, which
    # reaches the console; an error the user can fix (a corrupt file) must read as one line.
    try:
        return function(*args)
    except SynthError as error:
        return _UserError(error)
