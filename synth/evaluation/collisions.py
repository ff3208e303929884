"""Exact copies: synthetic rows identical to a real row, on the full data; and a holdout's overlap.

Definition: the number of synthetic rows whose values equal, column for column, those of
at least one real row, compared over the modelled columns (identifiers are fresh by
design and left out). Normalisation before comparing: floats rounded to
``FLOAT_DECIMALS`` decimals, datetimes compared as exact instants, text and categories
as exact strings, and a null equal only to a null. Computed with Polars' semi-join on
the normalised rows: a hash join that then compares the values themselves, so it is
hashing with exact verification of every candidate match (no false matches from hash
collisions), over every row of both tables. The synthetic table is streamed through the
join batch by batch (:class:`CopyCounter`), so memory holds the real rows and one batch.

Real people share every value more often than one might think in coarse tables (sex, age
band, a few codes), so the release gate does not compare copies with zero. It compares the
synthetic rows' matches with the training rows against their matches with the holdout,
scaled to the training set's size (:func:`copies_against_holdout`): both are counted over
every synthetic row, so the comparison has the power of the synthetic table, not of the
(smaller) holdout. The holdout's own rate of rows equal to a training row is reported too.

Holdout overlap: a holdout must hold people the generator never saw. With an entity key,
a patient key found in both tables settles it. On rows, compared over every column the two
tables hold (identifiers too: two records with one encounter id are one record), the share
of holdout rows equal to a real row is set against the share of real rows equal to
another real row (the table's own duplication): a holdout drawn from the same population
repeats real rows about as often as the real table repeats itself, and one cut from the
real table repeats them far more.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from synth.config import ColumnKind
from synth.schema import Schema

FLOAT_DECIMALS = 9


def exact_collisions(real: pa.Table, synthetic: pa.Table | pl.LazyFrame, schema: Schema) -> dict:
    """Count of synthetic rows that copy a real row, and their share of the synthetic rows."""
    counter = CopyCounter({"real": real}, schema)
    counter.add(synthetic)
    copies, total = counter.counts["real"], counter.rows
    return {"exact_collisions": int(copies), "exact_collision_rate": copies / total if total else 0.0}


class CopyCounter:
    """Synthetic rows equal to some row of each real table, counted exactly over a stream of batches.

    The real tables' distinct normalised rows are held (they are bounded samples); each
    synthetic batch is semi-joined against them and only the counts are kept, so the
    synthetic table is never held whole and every synthetic row is still compared.

    Args:
        references: real tables by name (``training``, ``holdout``...).
        schema: the columns compared are its non-identifier columns.
    """

    def __init__(self, references: dict[str, pa.Table], schema: Schema):
        self.columns = [c.name for c in schema.columns if c.kind is not ColumnKind.IDENTIFIER]
        self._unique = {
            name: _normalise(pl.from_arrow(table.select(self.columns)).lazy(), self.columns).unique().collect()
            for name, table in references.items()
        }
        self.counts = dict.fromkeys(references, 0)
        self.rows = 0

    def add(self, synthetic: pa.Table | pl.LazyFrame) -> None:
        """Count one batch of synthetic rows (conformed to the schema)."""
        lazy = synthetic if isinstance(synthetic, pl.LazyFrame) else pl.from_arrow(synthetic.select(self.columns)).lazy()
        rows = _normalise(lazy.select(self.columns), self.columns).collect()
        for name, unique in self._unique.items():
            self.counts[name] += rows.join(unique, on=self.columns, how="semi", nulls_equal=True).height
        self.rows += rows.height


def copies_against_holdout(training: pa.Table, holdout: pa.Table, synthetic: pa.Table | pl.LazyFrame | CopyCounter,
                           schema: Schema) -> dict:
    """Synthetic rows equal to a training row, and to a holdout row, with the scale between them.

    Why the scale bounds what a generator that never saw the training rows would copy: let
    ``q(n)`` be the chance that a synthetic row equals at least one of ``n`` real rows drawn
    from the population. ``q(n) = sum_x P(x) (1 - (1 - P(x))^n)`` is concave in ``n`` with
    ``q(0) = 0``, so ``q(n_t) <= (n_t / n_h) q(n_h)`` for ``n_t >= n_h`` (and ``q(n_t) <= q(n_h)``
    otherwise). A generator that learnt the population, not the training rows, matches the
    ``n_t`` training rows at most ``max(n_t / n_h, 1)`` times as often as the ``n_h`` holdout
    rows; one that memorised training rows matches them more.

    The same concavity gives the rate at which rows from the population equal a holdout row:
    ``q(n_h)``, estimated by the share of training rows equal to a holdout row. Synthetic rows
    matching holdout rows far more often than that copy real records the generator should
    never have seen (a holdout that was trained on, or a "synthetic" table of real rows).

    Args:
        synthetic: the synthetic rows, or a :class:`CopyCounter` of ``training`` and
            ``holdout`` that has counted them batch by batch.

    Returns:
        ``training_collisions`` (synthetic rows equal to a training row),
        ``synthetic_holdout_collisions`` (synthetic rows equal to a holdout row),
        ``training_holdout_rate`` (training rows equal to a holdout row, their share) and
        ``copy_scale`` (``max(n_t / n_h, 1)``).
    """
    counter = synthetic
    if not isinstance(counter, CopyCounter):
        counter = CopyCounter({"training": training, "holdout": holdout}, schema)
        counter.add(synthetic)
    natural = exact_collisions(holdout, training, schema)["exact_collision_rate"]
    scale = max(training.num_rows / holdout.num_rows, 1.0) if holdout.num_rows else float("nan")
    return {"training_collisions": counter.counts["training"], "synthetic_holdout_collisions": counter.counts["holdout"],
            "training_holdout_rate": natural, "copy_scale": scale}


def _normalise(frame: pl.LazyFrame, columns: list[str]) -> pl.LazyFrame:
    schema = frame.collect_schema()
    return frame.with_columns(
        pl.col(name).round(FLOAT_DECIMALS) for name in columns if schema[name].is_float()
    )


def holdout_overlap(real: pa.Table, holdout: pa.Table, schema: Schema) -> dict:
    """Patients and rows the holdout shares with the real table, and the real table's own duplication.

    Returns:
        ``shared_patients`` (``None`` without an entity key in both tables),
        ``holdout_match_rate`` (holdout rows equal to some real row), ``real_duplicate_rate``
        (real rows equal to another real row), the columns compared and both row counts.
    """
    columns = [c.name for c in schema.columns if c.name in real.column_names and c.name in holdout.column_names]
    key = schema.entity_key
    shared = None
    if key is not None and key in columns:
        real_keys = pl.from_arrow(real.select([key])).lazy().unique()
        shared = (
            pl.from_arrow(holdout.select([key])).lazy().unique()
            .join(real_keys, on=key, how="semi").select(pl.len()).collect().item()
        )
    real_rows = _normalise(pl.from_arrow(real.select(columns)).lazy(), columns)
    holdout_rows = _normalise(pl.from_arrow(holdout.select(columns)).lazy(), columns)
    matches = holdout_rows.join(real_rows.unique(), on=columns, how="semi", nulls_equal=True).select(pl.len())
    duplicated = real_rows.select(pl.struct(columns).is_duplicated().sum()).collect().item()
    return {
        "shared_patients": None if shared is None else int(shared),
        "holdout_match_rate": matches.collect().item() / holdout.num_rows if holdout.num_rows else 0.0,
        "real_duplicate_rate": duplicated / real.num_rows if real.num_rows else 0.0,
        "compared_columns": len(columns),
        "real_rows": real.num_rows,
        "holdout_rows": holdout.num_rows,
    }
