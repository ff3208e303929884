"""Crash points: the places where the crash-recovery tests kill the pipeline, and nothing else.

The tests prove that ``kill -9`` at any stage loses nothing: they run ``synth run`` with
``SYNTH_TEST_CRASH_AT=<point>:<n>`` in its environment, and the process sends itself
SIGKILL the *n*-th time it reaches ``<point>`` (the first time when ``:<n>`` is left
out). SIGKILL cannot be caught: no ``finally``, no ``atexit``, no Prefect state hook
runs, exactly as when the kernel's OOM killer or a container runtime ends the process.

The points (each is reached in the process that runs the flow):

* ``preprocess.partition``: a partition's clean parts and report are on disk;
* ``train.epoch``: an epoch's checkpoint is on disk (every network of the model counts);
* ``sample.chunk``: a chunk's Parquet part is on disk;
* ``evaluate``: the evaluation has read the data and is about to compute the metrics.

In production the variable is unset and :func:`crash_point` costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENVIRONMENT = "SYNTH_TEST_CRASH_AT"
POINTS = frozenset({"preprocess.partition", "train.epoch", "sample.chunk", "evaluate"})

_reached: dict[str, int] = {}


def crash_point(point: str) -> None:
    """SIGKILL this process if ``SYNTH_TEST_CRASH_AT`` names ``point`` and its count is reached."""
    wanted = os.environ.get(ENVIRONMENT)
    if not wanted:
        return
    name, _, count = wanted.partition(":")
    if name not in POINTS:
        raise ValueError(f"{ENVIRONMENT}={wanted!r}: no such crash point; the points are {sorted(POINTS)}")
    if name != point:
        return
    _reached[point] = _reached.get(point, 0) + 1
    if _reached[point] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
