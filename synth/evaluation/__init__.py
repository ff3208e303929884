"""Evaluation: how useful, faithful and private the synthetic data are.

One module per check; :func:`evaluate` runs them and returns the flat metrics dict
that becomes ``metrics.json``. Sampling-based checks state their sample sizes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds

from synth.config import EvaluationOptions
from synth.evaluation.collisions import exact_collisions
from synth.evaluation.quality import quality_scores
from synth.schema import Schema


def evaluate(
    real: pa.Table,
    synthetic: str | Path | pa.Table,
    schema: Schema,
    options: EvaluationOptions | None = None,
    seed: int = 0,
    holdout: pa.Table | None = None,
) -> dict:
    """Compare a synthetic table (or Parquet folder) with the real extract.

    Args:
        real: the real rows the generator was trained on.
        synthetic: a Parquet dataset folder or a table with the schema's columns.
        schema: column kinds (identifiers are left out of every comparison).
        options: evaluation sample size.
        seed: seeds the samples.
        holdout: real rows the generator never saw (privacy and utility baselines).
    """
    options = options or EvaluationOptions()
    synthetic_table = synthetic if isinstance(synthetic, pa.Table) else ds.dataset(str(synthetic), format="parquet").to_table()
    rng = np.random.default_rng(seed)
    real_sample = _sample(real, options.sample_rows, rng)
    synthetic_sample = _sample(synthetic_table, options.sample_rows, rng)
    metrics = {
        "rows": synthetic_table.num_rows,
        "columns": synthetic_table.num_columns,
        "real_rows": real.num_rows,
        "holdout_rows": holdout.num_rows if holdout is not None else 0,
        "evaluation_sample_rows": {"real": real_sample.num_rows, "synthetic": synthetic_sample.num_rows},
    }
    metrics |= quality_scores(real_sample.to_pandas(), synthetic_sample.to_pandas(), schema)
    metrics |= exact_collisions(real, pl.from_arrow(synthetic_table).lazy(), schema)
    return metrics


def _sample(table: pa.Table, rows: int, rng: np.random.Generator) -> pa.Table:
    if table.num_rows <= rows:
        return table
    return table.take(np.sort(rng.choice(table.num_rows, size=rows, replace=False)))
