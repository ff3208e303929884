"""Public grids for the published aggregates: no bin edge is a real person's value.

A histogram cut at real order statistics publishes those values (a bin edge at a real
admission time is that admission time). Every edge the report or ``metrics.json`` shows
is instead a multiple of a "nice" step - 1, 2, 2.5 or 5 times a power of ten, or for
times a round duration (a minute, an hour, a day, a week, 28 days, a quarter, a year of
364 days, then nice multiples of it) counted from the Unix epoch - chosen only from the
span to cover and the number of bins. Such a grid is known before any data are seen; the
data decide only which of its points are used, to within a step.
"""

from __future__ import annotations

import math

import numpy as np

NICE = (1.0, 2.0, 2.5, 5.0, 10.0)
DAY = 86_400
TIME_STEPS = (
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1_800, 3_600, 7_200, 10_800, 21_600, 43_200,
    DAY, 2 * DAY, 7 * DAY, 14 * DAY, 28 * DAY, 91 * DAY, 182 * DAY, 364 * DAY,
)


def nice_step(span: float, bins: int) -> float:
    """The smallest nice number (1, 2, 2.5 or 5 x 10^k) at least ``span / bins``."""
    raw = span / max(bins, 1)
    if not math.isfinite(raw) or raw <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in NICE if m * power >= raw * (1 - 1e-12))


def time_step(span: float, bins: int) -> float:
    """The smallest round duration (seconds) at least ``span / bins``."""
    raw = span / max(bins, 1)
    for step in TIME_STEPS:
        if step >= raw:
            return float(step)
    return TIME_STEPS[-1] * nice_step(raw / TIME_STEPS[-1], 1)


def nice_edges(low: float, high: float, bins: int, datetime: bool = False, integral: bool = False) -> np.ndarray:
    """Grid edges covering [low, high] in about ``bins`` bins (at most ``bins + 2``), half-open.

    Args:
        datetime: seconds since the epoch: round durations instead of nice numbers.
        integral: the values are whole numbers: no step below 1.
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        return np.array([0.0, 1.0])
    span = max(high - low, 0.0)
    step = time_step(span, bins) if datetime else nice_step(span, bins)
    if integral:
        step = max(step, 1.0)
    # Half-open bins [a, a + step): a value on the grid opens its own bin (whole numbers stay apart).
    start, stop = math.floor(low / step), math.floor(high / step) + 1
    return _clean(np.arange(start, stop + 1) * step, step)


def snap(values: np.ndarray, step: float) -> np.ndarray:
    """``values`` rounded to the nearest multiple of ``step``."""
    return _clean(np.round(np.asarray(values, dtype=np.float64) / step) * step, step)


def _clean(values: np.ndarray, step: float) -> np.ndarray:
    # 0.1 * 3 is 0.30000000000000004: round to the step's own decimals so edges print as the grid.
    decimals = max(0, -math.floor(math.log10(step)) + 1)
    return np.round(values, decimals)
