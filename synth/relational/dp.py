"""Differential privacy for related tables, the patient being the unit across every table.

A patient is a row of the root table and every row under it, in every table. The
relational synthesizer's DP fit (:meth:`synth.relational.model.RelationalSynthesizer.fit`)
spends the budget as the flat patient model does (:mod:`synth.privacy`), with these parts:

* **contribution bounds**, per table: a public cap on the rows one patient contributes
  to it (``tables.<name>.max_rows_per_patient``, default ``entity.max_rows_per_entity``).
  Going down the tree, a row whose parent was dropped goes too, then a patient with
  more rows than the cap keeps a random subset of them (:func:`bound_contributions`,
  secure draws: which rows are kept touches real data). A parent row then has at most
  ``cap`` children in a table, so the children counts the parent's model draws have the
  public domain ``0..cap`` (:meth:`synth.relational.counts.CountBands.public`) and cost nothing;
* **the number of patients** (Laplace, :class:`synth.privacy.UnitCount`);
* **each table's domain** (:func:`release_domains`): :mod:`synth.dp_domain` with the
  patient as the unit (a patient's rows in the table weigh ``1/rows`` each, a patient
  counts towards at most ``cap`` categories), the transforms' share of the budget split
  over tables by their number of columns as the flat model splits it over its two levels;
  declared ``public_values`` / ``public_range`` honoured;
* **one DP-SGD run for the whole tree**: every table's network is a part of one
  :class:`TreeNetwork`, whose forward takes every table's rows of a batch of patients
  (:class:`TreeUnits`: the root's row (B, S_root); each other table's rows padded to the
  batch's longest patient, (B, R_t, S_t), with a mask) and returns one loss per patient,
  the sum over tables. Opacus' Poisson sampling draws patients, ghost clipping bounds each
  *patient's* gradient over all tables' parameters together to ``max_grad_norm``, noise
  is added once, and one accountant gives the networks' epsilon.

A child row's conditioning (its parent's encoded row and its place among its siblings)
is built from the rows of the same patient, so it stays inside the unit. What is not
covered is what the flat model does not cover either (column kinds, date links decided
from the data unless declared; see :data:`synth.privacy.NOT_COVERED`) plus, here, which
column is whose key (the tree itself).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch import nn
from torch.utils.data import Dataset

from synth import dp_domain
from synth.config import PipelineConfig
from synth.models.network import MixedVAE
from synth.privacy import BudgetPlan, PrivacyReport, combine
from synth.relational.schema import RelationalSchema
from synth.schema import Schema

NETWORKS = "networks"  # the one DP-SGD run's name in the budget plan and in privacy.json


# -- contribution bounds -------------------------------------------------------------------------
def contribution_caps(schema: RelationalSchema, config: PipelineConfig) -> dict[str, int]:
    """Per table, the most rows one patient contributes (the root: its one row)."""
    specs = config.tables or {}
    caps = {}
    for name in schema.order:
        spec = specs.get(name)
        declared = spec.max_rows_per_patient if spec is not None else None
        caps[name] = 1 if name == schema.root else declared or config.entity.max_rows_per_entity
    return caps


def bound_contributions(
    tables: dict[str, pa.Table], schema: RelationalSchema, caps: dict[str, int], rng: np.random.Generator
) -> tuple[dict[str, pa.Table], dict[str, int]]:
    """The tables with at most ``caps[t]`` rows of each patient in table ``t``, and the rows dropped per table.

    Parents first: rows under a dropped row go with it, then a patient over the cap keeps
    ``cap`` of its rows chosen uniformly at random. ``rng`` must be secure (the choice
    touches real rows). The counts dropped are for the run's log only: they are exact
    counts of real rows, not released.
    """
    out, patient, dropped = {}, {}, {}
    for name in schema.order:
        table, relation = tables[name], schema.parent_relation(name)
        if relation is None:
            out[name], patient[name], dropped[name] = table, np.arange(table.num_rows), 0
            continue
        parent_keys = out[relation.parent][relation.key].combine_chunks()
        index = pc.index_in(table[relation.column], value_set=parent_keys).to_numpy(zero_copy_only=False)
        kept = ~pd.isna(index)
        owner = np.full(table.num_rows, -1, dtype=np.int64)
        owner[kept] = patient[relation.parent][index[kept].astype(np.int64)]
        rows = np.flatnonzero(kept)
        order = np.lexsort((rng.random(len(rows)), owner[rows]))  # by patient, in random order within each
        rows = rows[order]
        starts = np.r_[0, np.flatnonzero(np.diff(owner[rows])) + 1]
        rank = np.arange(len(rows)) - np.repeat(starts, np.diff(np.r_[starts, len(rows)]))
        rows = np.sort(rows[rank < caps[name]])
        out[name], patient[name] = table.take(pa.array(rows, pa.int64())), owner[rows]
        dropped[name] = table.num_rows - len(rows)
    return out, dropped


# -- the domains ---------------------------------------------------------------------------------
@dataclass
class TableLevel:
    """One table as its network sees it, before the transforms (what its domain is learned from)."""

    name: str
    level: pd.DataFrame
    schema: Schema  # the level schema: modelled columns, linked dates as steps, one count per child
    counts: dict[str, int]  # children count column -> its number of (public) band labels
    linked: set[str]  # dates stored as steps after another (a new quantity: never declared public)
    patient: np.ndarray  # (rows,) each row's patient


def release_domains(
    levels: list[TableLevel], caps: dict[str, int], plan: BudgetPlan, config: PipelineConfig, rng: np.random.Generator
) -> dict[str, dp_domain.DPDomain]:
    """Each table's DP domain; the transforms' budget split over tables by their learned columns'
    weights (:func:`synth.dp_domain.column_weights`, as a table's columns share theirs).

    A children count's domain is public (the band labels of ``0..cap``, equally likely): no budget.
    """
    learned, public, weight = {}, {}, {}
    for table in levels:
        learned[table.name] = [c for c in table.schema.modelled if c.name not in table.counts]
        overrides = {k: v for k, v in config.columns.items() if k in table.level.columns and k not in table.linked}
        public[table.name] = dp_domain.declared_public(learned[table.name], overrides)
        weight[table.name] = sum(dp_domain.column_weights(learned[table.name], public[table.name]).values())
    total = sum(weight.values()) or 1
    epsilon, delta = plan.transforms
    domains = {}
    for table in levels:
        share = weight[table.name] / total
        domain = dp_domain.learn_domain(  # the root: one row per patient, each of weight 1
            table.level, learned[table.name], epsilon * share, delta * share, rng,
            units=table.patient,
            max_values_per_unit=caps[table.name],
            public=public[table.name],
        )
        for column, labels in table.counts.items():
            domain.columns[column] = dp_domain.ColumnDomain(
                kind="categorical", categories=[float(v) for v in range(labels)], shares=[1 / labels] * labels
            )
        domains[table.name] = domain
    return domains


# -- one DP-SGD run over the tree ----------------------------------------------------------------
@dataclass
class TreeTable:
    """One table's training rows: ``x`` (rows, S), ``condition`` (rows, E) or None (the root), each row's patient."""

    x: torch.Tensor
    condition: torch.Tensor | None
    patient: torch.Tensor


class TreeUnits(Dataset):
    """Patients as units over every table of the tree; the root table first, one row per patient.

    A batch of B patients is ``x`` (B, S_root) - the root rows - and, for the table at
    position ``i >= 1``, ``x{i}`` (B, R, S_i), ``condition{i}`` (B, R, E_i) and ``mask{i}``
    (B, R): each patient's rows in that table, padded to the batch's longest (at least one
    padded row, so every layer sees the batch). Batches are gathered in one indexing
    operation per tensor.
    """

    def __init__(self, tables: list[TreeTable]):
        self.root, self.tables = tables[0], tables[1:]
        patients = self.root.x.shape[0]
        self.order, self.sizes, self.starts = [], [], []
        for table in self.tables:
            order = torch.argsort(table.patient, stable=True)
            sizes = torch.bincount(table.patient, minlength=patients)
            self.order.append(order)
            self.sizes.append(sizes)
            self.starts.append(torch.cumsum(sizes, 0) - sizes)
        self.rows = sum(t.x.shape[0] for t in tables)
        self.tensors = {"x": self.root.x}  # for shape queries

    def __len__(self) -> int:
        return self.root.x.shape[0]

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        batch = {"x": self.root.x[index]}
        for i, table in enumerate(self.tables, start=1):
            sizes = self.sizes[i - 1][index]  # (B,)
            longest = max(int(sizes.max()) if len(index) else 0, 1)
            offsets = torch.arange(longest)
            mask = offsets[None, :] < sizes[:, None]  # (B, R)
            if table.x.shape[0] == 0:
                rows = torch.zeros(mask.shape, dtype=torch.long)
                x = torch.zeros((*mask.shape, table.x.shape[1]))
                condition = torch.zeros((*mask.shape, table.condition.shape[1]))
            else:
                position = (self.starts[i - 1][index][:, None] + offsets[None, :]).clamp(max=table.x.shape[0] - 1)
                rows = self.order[i - 1][position]  # (B, R): flat row numbers, padding repeats a row
                x, condition = table.x[rows], table.condition[rows]
            keep = mask[..., None].to(x.dtype)
            batch[f"x{i}"], batch[f"condition{i}"], batch[f"mask{i}"] = x * keep, condition * keep, mask
        return batch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([index])

    def split(self, fraction: float, generator: torch.Generator):
        return self, None  # only used under DP, which trains on every patient


class TreeNetwork(nn.Module):
    """Every table's network as one module: the loss of a patient is the sum of its rows' losses in every table.

    Its forward keeps the patient as the first dimension of every layer's input, so Opacus
    computes (and clips) one gradient per patient over all tables' parameters together.
    """

    def __init__(self, networks: list[MixedVAE]):
        super().__init__()
        self.networks = nn.ModuleList(networks)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None, **rest: torch.Tensor) -> torch.Tensor:
        """(B,) negative ELBO per patient: its root row's plus its masked rows' in every other table."""
        loss = self.networks[0](x, generator=generator)
        for i, network in enumerate(self.networks[1:], start=1):
            loss = loss + network(rest[f"x{i}"], rest[f"condition{i}"], rest[f"mask{i}"], generator)
        return loss


# -- the report ----------------------------------------------------------------------------------
def tree_report(plan: BudgetPlan, training: PrivacyReport, caps: dict[str, int], domain_files: dict) -> PrivacyReport:
    """privacy.json: the count, every table's domain, the networks' one DP-SGD run, and the public bounds."""
    report = combine(plan, {NETWORKS: training}, "patient", domain_files)
    report.parts["transforms"]["releases"] = "per table and column: bounds, histogram, category set and shares, " \
        "null share (" + ", ".join(f"{t}: {f}" for t, f in domain_files.items()) + ")"
    report.parts[NETWORKS]["releases"] = (
        "every table's network weights (tables/<position>/model.pt), trained together: one gradient per patient "
        "over all tables' parameters, clipped jointly, noised once"
    )
    report.parts["contribution_bounds"] = {
        "releases": "nothing: public caps on rows per patient in each table (excess rows dropped at random before "
        "anything else is computed); children counts take the public values 0..cap",
        "mechanism": "public (tables.<name>.max_rows_per_patient, default entity.max_rows_per_entity)",
        "caps": dict(caps),
        "epsilon": 0.0,
        "delta": 0.0,
    }
    report.covers = report.covers + [
        "every table of the tree: a patient is a root row and every row under it, in every table"
    ]
    report.not_covered = report.not_covered + [
        "the tree itself: which column is whose key (declared or inferred from names and values)"
    ]
    return report
