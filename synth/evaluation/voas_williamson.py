"""Voas-Williamson goodness of fit over the two-way contingency tables of the columns.

Definition, as synthpop's ``utility.tab`` computes it (R package synthpop, file
``R/utility.syn.r``, function ``utility.tab.synds``, statistic ``UtabVW``): for each pair of
columns, cross-tabulate the real and the synthetic rows, numbers and dates cut into
``GROUPS`` groups at the quantiles of the real and synthetic values together (synthpop's
``group_num``: ``classIntervals(c(x1, x2), n = 5, style = "quantile")``, intervals closed
on the left), missing values a cell of their own. The real counts are scaled to the
synthetic total, ``tabd <- table(data) * (nrow(syndata) / nrow(data))``; with s_k the
synthetic count in cell k and o_k = real_k * n_synthetic / n_real, over cells with
s_k + o_k > 0 (synthpop sets the other terms to 0 and leaves them out of df):

    VW = sum_k (s_k - o_k)^2 / ((s_k + o_k) / 2),    df = (non-empty cells) - 1.

The scaling makes VW the chi-square statistic of the synthetic counts against the real
proportions at the synthetic size, so it holds for tables of any two sizes. If the
synthetic rows are drawn from the real table's cell proportions, VW follows a chi-square
distribution with df degrees of freedom, so ``ratio = VW / df`` is about 1. An
independent sample of the population (not drawn from the real table) carries the real
table's sampling noise as well, scaled by n_synthetic / n_real: its ratio is about
1 + n_synthetic / n_real (2 at equal sizes). Each table gets VW, df, the ratio and the
chi-square p-value; overall, the mean and median ratio across tables. One difference
from synthpop, on purpose: a synthetic missing value in a column the real data never
leave missing is a cell here (synthpop's ``table`` would drop the row).
References: D. Voas and P. Williamson (2001), "Evaluating goodness-of-fit measures for
synthetic microdata", Geographical and Environmental Modelling 5(2); G. M. Raab,
B. Nowok, C. Dibben (2021), "Assessing, visualizing and improving the utility of
synthetic data", arXiv:2109.12717; B. Nowok, G. M. Raab, C. Dibben (2016), "synthpop:
Bespoke creation of synthetic data in R", J. Stat. Softw. 74(11).
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.stats import chi2

from synth.evaluation.encoding import Encoded, Layout

GROUPS = 5
WORST = 10


def voas_williamson(layout: Layout, real: Encoded, synthetic: Encoded) -> dict:
    """VW per two-way table and overall (see the module docstring)."""
    real_cells, synthetic_cells, names = _discretise(layout, real, synthetic)
    tables = []
    for a, b in itertools.combinations(range(len(names)), 2):
        width = int(max(real_cells[:, b].max(initial=0), synthetic_cells[:, b].max(initial=0))) + 1
        real_counts = np.bincount(real_cells[:, a] * width + real_cells[:, b])
        synthetic_counts = np.bincount(synthetic_cells[:, a] * width + synthetic_cells[:, b])
        statistic, df = vw_statistic(real_counts, synthetic_counts)
        tables.append(
            {
                "columns": [names[a], names[b]],
                "vw": statistic,
                "df": df,
                "ratio": statistic / df if df > 0 else 0.0,
                "p_value": float(chi2.sf(statistic, df)) if df > 0 else 1.0,
            }
        )
    ratios = np.array([t["ratio"] for t in tables])
    worst = sorted(tables, key=lambda t: -t["ratio"])[:WORST]
    return {
        "voas_williamson": {
            "mean_ratio": float(ratios.mean()) if len(ratios) else float("nan"),
            "median_ratio": float(np.median(ratios)) if len(ratios) else float("nan"),
            "tables": len(tables),
            "tables_p_below_0_05": int(sum(t["p_value"] < 0.05 for t in tables)),
            "real_rows": len(real),
            "synthetic_rows": len(synthetic),
            "worst": worst,
            "per_table": tables,
        }
    }


def vw_statistic(real_counts: np.ndarray, synthetic_counts: np.ndarray) -> tuple[float, int]:
    """(VW, df) of one table given as flat cell counts (real counts are rescaled here)."""
    size = max(len(real_counts), len(synthetic_counts))
    real_counts = np.pad(real_counts.astype(float), (0, size - len(real_counts)))
    synthetic_counts = np.pad(synthetic_counts.astype(float), (0, size - len(synthetic_counts)))
    n_real, n_synthetic = real_counts.sum(), synthetic_counts.sum()
    if n_real == 0 or n_synthetic == 0:
        return float("nan"), 0
    expected_real = real_counts * (n_synthetic / n_real)
    mean = (synthetic_counts + expected_real) / 2
    used = mean > 0
    statistic = float(((synthetic_counts[used] - expected_real[used]) ** 2 / mean[used]).sum())
    return statistic, int(used.sum()) - 1


def _discretise(layout: Layout, real: Encoded, synthetic: Encoded) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Cell codes per column, shared by both tables: quantile groups of both tables' numbers (+ missing)."""
    real_columns, synthetic_columns = [], []
    for j in range(len(layout.numeric)):
        pooled = np.concatenate([real.numeric[:, j], synthetic.numeric[:, j]])
        present = pooled[~np.isnan(pooled)]
        # R's quantile type 7 is numpy's default ("linear"); the outer breaks (min, max) hold every value.
        cuts = np.unique(np.quantile(present, np.linspace(0, 1, GROUPS + 1)[1:-1])) if len(present) else np.array([])
        for frame, out in ((real, real_columns), (synthetic, synthetic_columns)):
            values = frame.numeric[:, j]
            out.append(np.where(np.isnan(values), 0, np.searchsorted(cuts, values, side="right") + 1))
    for j in range(len(layout.categorical)):
        real_columns.append(real.codes[:, j])
        synthetic_columns.append(synthetic.codes[:, j])
    return _stack(real_columns, len(real)), _stack(synthetic_columns, len(synthetic)), layout.columns


def _stack(columns: list[np.ndarray], rows: int) -> np.ndarray:
    return np.column_stack(columns).astype(np.int64) if columns else np.zeros((rows, 0), np.int64)
