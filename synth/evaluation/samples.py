"""Seeded row samples: every sampling-based check says how many rows it used."""

from __future__ import annotations

import numpy as np

#: At most this many rows of one sampled patient: a patient with a thousand events must not
#: outweigh the others in a row-level score, nor one patient fill an attack's budget.
ROWS_PER_PATIENT = 20


def sample_indices(rows: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions of ``min(size, rows)`` rows drawn without replacement."""
    if rows <= size:
        return np.arange(rows)
    return np.sort(rng.choice(rows, size=size, replace=False))


def seed_for(rng: np.random.Generator) -> int:
    """An integer seed for libraries that take one (scikit-learn), drawn from ``rng``."""
    return int(rng.integers(0, 2**31 - 1))


def support(cells: np.ndarray, patients: np.ndarray | None, size: int) -> np.ndarray:
    """How many real rows fall in each cell (0..size-1), or how many distinct patients do.

    Small-count suppression must count people, not rows: in an event table one patient's
    hundred rows would otherwise fill a histogram bin or a density cell alone.
    """
    if patients is None or len(cells) == 0:
        return np.bincount(cells, minlength=size)[:size]
    pairs = np.unique(np.stack([cells.astype(np.int64), patients.astype(np.int64)]), axis=1)
    return np.bincount(pairs[0], minlength=size)[:size]


def outer_edges(values: np.ndarray, patients: np.ndarray | None, k: int) -> tuple[float, float]:
    """The lowest and highest values with at least ``k`` rows (or patients) at or beyond them.

    Plot axes end here, so no edge is one person's extreme value.
    """
    order = np.argsort(values, kind="stable")
    ranked = values[order]
    if patients is None:
        return float(ranked[min(k, len(ranked) - 1)]), float(ranked[max(len(ranked) - 1 - k, 0)])
    who = patients[order]
    _, first = np.unique(who, return_index=True)  # where each patient first appears, from below
    _, last = np.unique(who[::-1], return_index=True)  # ... and from above
    first, last = np.sort(first), np.sort(last)
    low = ranked[first[min(k, len(first) - 1)]]
    high = ranked[len(ranked) - 1 - last[min(k, len(last) - 1)]]
    return float(low), float(high)


def sample_patients(
    positions: np.ndarray, patients: np.ndarray, rows: int, rng: np.random.Generator, count: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Whole patients drawn without replacement: the positions of their rows and each row's patient.

    Args:
        positions: the candidate rows' positions in their table.
        patients: each candidate row's patient code (aligned with ``positions``).
        rows: about how many rows to draw; patients are drawn until their rows (at most
            ``ROWS_PER_PATIENT`` each) reach it. Ignored when ``count`` is given.
        count: draw exactly this many patients (as many as there are, if fewer).

    Returns:
        ``(positions, patient)``: sorted row positions, and for each the index (0..k-1) of its
        patient among the ``k`` drawn, so scores can be averaged per patient.
    """
    unique, inverse = np.unique(patients, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(unique))
    order = rng.permutation(len(unique))
    if count is None:
        count = int(np.searchsorted(np.cumsum(np.minimum(counts, ROWS_PER_PATIENT)[order]), rows) + 1)
    by_patient = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    chosen, owner = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    for k, patient in enumerate(order[: min(count, len(unique))]):
        mine = by_patient[starts[patient] : starts[patient] + counts[patient]]
        if len(mine) > ROWS_PER_PATIENT:
            mine = rng.choice(mine, ROWS_PER_PATIENT, replace=False)
        chosen.append(mine)
        owner.append(np.full(len(mine), k))
    chosen_rows, owners = np.concatenate(chosen), np.concatenate(owner)
    ordered = np.argsort(chosen_rows, kind="stable")
    return positions[chosen_rows[ordered]], owners[ordered]


def per_patient_mean(values: np.ndarray, owners: np.ndarray) -> np.ndarray:
    """The mean of ``values`` over each patient's rows (``owners`` as from :func:`sample_patients`)."""
    counts = np.bincount(owners)
    return np.bincount(owners, weights=values, minlength=len(counts)) / np.maximum(counts, 1)
