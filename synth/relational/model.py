"""The relational synthesizer: the patient model's two levels, generalised down a tree of tables.

Design (and why). :class:`~synth.models.patient.PatientSynthesizer` models a patient
vector, then each of its rows conditioned on it. Here every table of the tree
(:class:`~synth.relational.schema.RelationalSchema`) gets one
:class:`~synth.models.table_vae.TableVAE` - the same engine, reused unchanged:

* the **root** table's VAE models its rows plus one column per child table: the number
  of that table's rows under the row, as a category (:mod:`synth.relational.counts`;
  several children tables per parent are several columns, drawn jointly with the row's
  attributes);
* a **child** table's VAE models its rows **conditioned on its parent's row** - the
  parent's whole encoded vector as the parent's network sees it (which includes the
  parent's own children counts) and the row's position among its siblings
  (:func:`synth.entity.position_features`), exactly as patient.py conditions a row on its
  patient - plus its own children counts, so the recursion goes down any depth.

Sampling walks the tree parents first: ``n_roots`` root rows, then for each table as
many rows under each synthetic parent row as the parent's model drew, conditioned on
that parent's generated vector. Keys are fresh (integer keys start past the largest real
one, text keys are ``syn-`` counters) and every foreign key is its synthetic parent's
key, so there are no orphans by construction. A grandparent's key a table carries is
copied down the chain. Dates are stored as non-negative steps after their own or their
parent's dates, raised to the other dates they follow and capped at the parent's later
dates (:mod:`synth.relational.dates`), so admission <= ICU in <= ICU out <= discharge and
events inside their stay hold wherever they hold in (almost) every real row.

Differential privacy (``privacy.epsilon``) takes the patient - a root row and every row
under it, in every table - as the unit (:mod:`synth.relational.dp`): rows per patient are
capped per table, children counts take the public bands of ``0..cap``, each table's domain
is learned with DP, and all tables' networks train in one DP-SGD run whose per-patient
gradient spans every table's parameters. Fresh integer keys then start at a public
``10**d`` (the largest real key would be a release).

What it does not do (yet): rejection of declared constraints, and tables with two parents
(refused by the schema).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import torch

from synth import identifiers
from synth.artifact import VERSIONS_JSON, check_plain_files, check_versions, library_versions, read_json
from synth.config import ColumnKind, PipelineConfig
from synth.entity import position_features
from synth.errors import ConfigError, ModelError, SchemaError
from synth.frames import to_arrow, to_model_frame
from synth.io.atomic import atomic_dir, write_json_atomic, write_text_atomic
from synth.models.table_vae import DOMAIN_JSON, TableVAE
from synth.models.training import Units, train
from synth.privacy import BudgetPlan, PrivacyReport, Releases, plan_budget, secure_numpy
from synth.relational import dp
from synth.relational.counts import CountBands
from synth.relational.dates import TableDates, decode_dates, encode_dates, plan_dates
from synth.relational.integrity import check_integrity
from synth.relational.schema import Relation, RelationalSchema
from synth.schema import ColumnSpec, Schema, infer_schema

COUNT = "__n_"  # the band of the number of rows of a child table under this row (synth.relational.counts)
RELATIONAL_JSON = "relational.json"
CONFIG_JSON = "config.json"
PRIVACY_JSON = "privacy.json"
KEY_DIGITS = 15  # under DP fresh integer keys start at 10**15 at most: exact through float64 frames
TABLES_DIR = "tables"


@dataclass
class TableModel:
    """What was learned about one table.

    Attributes:
        schema: its columns as in the extract (keys as identifiers), for casting output back.
        body: the non-key columns as inferred (what is modelled, and other identifiers).
        dates: how its dates are stored and bounded (:mod:`synth.relational.dates`).
        children: per child table, the bands of its number of rows under one row.
        key_start: first fresh integer primary key (past every real one); None for text keys.
        formats: identifier formats of its non-key identifier columns.
        vae: its VAE (conditioned on the parent's row unless it is the root).
    """

    schema: Schema
    body: Schema
    dates: TableDates
    children: dict[str, CountBands]
    key_start: int | None
    formats: dict
    vae: TableVAE | None

    def to_dict(self) -> dict:
        return {
            "schema": self.schema.to_json(),
            "body": self.body.to_json(),
            "dates": self.dates.to_dict(),
            "children": {child: bands.to_dict() for child, bands in self.children.items()},
            "key_start": self.key_start,
            "formats": self.formats,
            "condition_dim": self.vae.condition_dim,
        }


class RelationalSynthesizer:
    """A tree of conditional VAEs over a relational extract (see the module docstring)."""

    name = "relational-vae"

    # -- fitting ---------------------------------------------------------------------------
    def fit(
        self, tables: dict[str, pa.Table], schema: RelationalSchema, config: PipelineConfig
    ) -> RelationalSynthesizer:
        """Learn every table of ``schema`` from ``tables``, parents first.

        With ``privacy.epsilon`` the patient (a root row and every row under it) is the
        unit across all tables (:mod:`synth.relational.dp`): rows per patient are bounded
        per table, the domains are learned with DP, and all tables' networks train in one
        DP-SGD run. Without it, each table's network trains on its own.

        Raises:
            SchemaError: a table has duplicate or null keys, or orphan rows.
        """
        _check_column_names(tables, config)
        integrity = check_integrity(tables, schema)
        if integrity.problems:
            raise SchemaError(f"the extract's keys are not intact, fix them before training: {integrity.to_dict()}")
        self.schema_, self.config_ = schema, config
        private = config.privacy.enabled
        self.privacy_ = PrivacyReport(enabled=False)
        self.dropped_: dict[str, int] = {}  # rows over the contribution bounds (for the run's log; not released)
        self.caps_: dict[str, int] | None = None
        if private:  # which rows of a long patient are kept touches real data: secure draws
            caps = self.caps_ = dp.contribution_caps(schema, config)
            tables, self.dropped_ = dp.bound_contributions(tables, schema, caps, secure_numpy())
        grouped, parent_of = _grouped(tables, schema)
        levels = self._levels(grouped, parent_of, caps if private else None)
        plan = domains = None
        if private:
            count = Releases(None, "").unit_count(grouped[schema.root].num_rows, config.privacy)
            plan = plan_budget(config.privacy, count, {dp.NETWORKS: 1.0})
            domains = dp.release_domains(levels, caps, plan, config, secure_numpy())

        matrices: dict[str, np.ndarray] = {}  # the VAEs' real inputs, to condition children on
        tree: list[dp.TreeTable] = []
        self.training_ = {}
        for position, (name, level) in enumerate(zip(schema.order, levels)):
            relation, codes = schema.parent_relation(name), parent_of.get(name)
            condition = None if relation is None else self._condition(relation, matrices[relation.parent], codes)
            model = self.tables_[name]
            vae = TableVAE(config, config.seed + position, 0 if condition is None else condition.shape[1])
            vae.fit_transformer(level.level, level.schema, None if domains is None else domains[name])
            matrices[name] = vae.matrix(level.level)
            x = torch.as_tensor(matrices[name], dtype=torch.float32)
            if private:  # the networks train together below; a child's condition only needs the encoding
                vae.network_ = vae.new_network()
                tree.append(dp.TreeTable(x, condition, torch.as_tensor(level.patient)))
            else:
                groups = None if codes is None else torch.as_tensor(codes)  # validation holds out whole parents
                self.training_[name] = vae.train(Units(x, condition, groups=groups), None, stage=name)
            model.vae = vae
        if private:
            self._train_tree(tree, plan, caps)
        return self

    def _levels(
        self, grouped: dict[str, pa.Table], parent_of: dict[str, np.ndarray], caps: dict[str, int] | None
    ) -> list[dp.TableLevel]:
        """Each table as its VAE sees it (rows, dates as steps, children counts), parents first; fills ``tables_``
        (without VAEs). With ``caps`` (DP) children counts take the public bands of ``0..cap``."""
        schema, config = self.schema_, self.config_
        self.tables_: dict[str, TableModel] = {}
        frames: dict[str, pd.DataFrame] = {}  # absolute model frames, to hand dates down
        patients: dict[str, np.ndarray] = {}
        levels = []
        for name in schema.order:
            table, relation = grouped[name], schema.parent_relation(name)
            codes = parent_of.get(name)
            children = schema.children(name)
            patients[name] = np.arange(table.num_rows) if codes is None else patients[relation.parent][codes]
            full, body = _schemas(table, schema.key_columns(name), config, name, leaf=not children)
            frame = to_model_frame(table, body) if body.columns else pd.DataFrame(index=pd.RangeIndex(table.num_rows))
            parent_dates = self._parent_dates(relation, frames, codes)
            dates = plan_dates(frame, parent_dates, config.entity.order_threshold)
            level = encode_dates(frame, parent_dates, dates)
            counts = {r.child: np.bincount(parent_of[r.child], minlength=table.num_rows) for r in children}
            if caps is None:
                bands = {child: CountBands.fit(count) for child, count in counts.items()}
            else:
                bands = {child: CountBands.public(caps[child]) for child in counts}
            for child, count in counts.items():
                level[COUNT + child] = bands[child].encode(count)
            key = schema.primary_keys[name]
            self.tables_[name] = TableModel(
                schema=full,
                body=body,
                dates=dates,
                children=bands,
                key_start=_key_start(table[key], key, private=caps is not None) if key else None,
                formats=identifiers.learn_formats(
                    table.select(body.names), body, config.pii.locale, private=caps is not None
                ),
                vae=None,
            )
            frames[name] = frame
            levels.append(dp.TableLevel(
                name, level, _level_schema(body, dates, counts), {COUNT + c: len(b.lows) for c, b in bands.items()},
                dates.linked, patients[name],
            ))
        return levels

    def _train_tree(self, tree: list[dp.TreeTable], plan: BudgetPlan, caps: dict[str, int]) -> None:
        """All tables' networks in one DP-SGD run, the patient as the unit (see :mod:`synth.relational.dp`)."""
        vaes = [self.tables_[name].vae for name in self.schema_.order]
        network = dp.TreeNetwork([vae.network_ for vae in vaes])
        report = train(network, dp.TreeUnits(tree), self.config_.model, plan.trainings[dp.NETWORKS],
                       self.config_.seed, stage=dp.NETWORKS)
        for position, (name, vae) in enumerate(zip(self.schema_.order, vaes)):
            vae.network_ = network.networks[position].cpu().eval()
            vae.training_ = self.training_[name] = report
        files = {name: f"{TABLES_DIR}/{position}/{DOMAIN_JSON}" for position, name in enumerate(self.schema_.order)}
        self.privacy_ = dp.tree_report(plan, report.privacy, caps, files)

    def _condition(self, relation: Relation, parent_matrix: np.ndarray, codes: np.ndarray) -> torch.Tensor:
        """(rows, E): each row's parent vector (as the parent's network sees it) and its place among siblings."""
        vectors = self.tables_[relation.parent].vae.encode_inputs(parent_matrix)  # (parent rows, E - 4)
        index = torch.as_tensor(codes, dtype=torch.long)
        return torch.cat([vectors[index], torch.as_tensor(position_features(codes))], dim=1)

    def _parent_dates(
        self, relation: Relation | None, frames: dict[str, pd.DataFrame], codes: np.ndarray | None
    ) -> pd.DataFrame | None:
        """The parent row's dates, one row per row of the table (None for the root)."""
        if relation is None:
            return None
        dates = list(self.tables_[relation.parent].dates.order)
        if not dates:  # (a frame of no columns would have no rows to align)
            return pd.DataFrame(index=pd.RangeIndex(len(codes)))
        return frames[relation.parent][dates].iloc[codes].reset_index(drop=True)

    # -- sampling --------------------------------------------------------------------------
    def sample(self, n_roots: int, seed: int = 0) -> dict[str, pa.Table]:
        """``n_roots`` root rows and everything under them, one Arrow table per table.

        Each table draws from its own stream of ``SeedSequence(seed)``, so the same seed
        gives identical tables.
        """
        self._check_fitted()
        if n_roots < 1:
            raise ValueError("n_roots must be at least 1")
        schema = self.schema_
        streams = np.random.SeedSequence(seed).spawn(len(schema.order))
        frames, matrices, keys, counts, codes_of, out = {}, {}, {}, {}, {}, {}
        patients = {}  # each row's synthetic patient (rows stay grouped by patient down the tree)
        for name, stream in zip(schema.order, streams):
            model, relation = self.tables_[name], schema.parent_relation(name)
            generator = torch.Generator().manual_seed(int(stream.generate_state(1, dtype=np.uint64)[0] >> 1))
            codes = None if relation is None else np.repeat(np.arange(len(counts[name])), counts[name])
            n = n_roots if codes is None else len(codes)
            if n:
                condition = None if codes is None else self._condition(relation, matrices[relation.parent], codes)
                matrices[name] = model.vae.generate(n, generator, condition)
                level = model.vae.reverse(matrices[name]).reset_index(drop=True)
            else:  # every parent drew no child here: an empty table, and empty ones below it
                matrices[name] = np.empty((0, len(model.vae.transformer_.segments_)))
                level = _empty_level(model)
            parent_dates = self._parent_dates(relation, frames, codes)
            frame = decode_dates(level, parent_dates, model.dates)
            rng = np.random.default_rng(stream.spawn(1)[0])  # counts inside bands, fake identifiers
            patients[name] = np.arange(n) if codes is None else patients[relation.parent][codes]
            drawn = _drawn_counts(frame, model, rng)
            if self.caps_ is not None:  # under DP no real patient had more rows in a table than its cap: nor do these
                drawn = {child: _within_cap(c, patients[name], self.caps_[child]) for child, c in drawn.items()}
            counts |= drawn
            key = schema.primary_keys[name]
            if key is not None:
                keys[name] = _fresh_keys(model, key, n)
                frame[key] = keys[name].to_numpy(zero_copy_only=False)
            codes_of[name] = codes
            if relation is not None:  # each row carries its synthetic parent's key: no orphans
                frame[relation.column] = _keys_at(keys[relation.parent], codes, model.schema[relation.column])
            for shortcut in schema.shortcuts_of(name):  # an ancestor's key: the one up the chain
                rows = codes
                for step in schema.chain(name, shortcut.parent)[1:]:
                    rows = codes_of[step.child][rows]
                frame[shortcut.column] = _keys_at(keys[shortcut.parent], rows, model.schema[shortcut.column])
            for spec in model.body.of_kind(ColumnKind.IDENTIFIER):
                fresh = identifiers.fresh_values(spec, model.formats[spec.name], 0, n, rng, self.config_.pii.locale)
                frame[spec.name] = fresh.to_numpy(zero_copy_only=False)
            frames[name] = frame
            out[name] = to_arrow(frame, model.schema)
        return out

    # -- persistence -----------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """A folder of plain files: the tree, the config, versions, and one VAE folder per table."""
        self._check_fitted()
        folder = Path(folder)
        with atomic_dir(folder) as tmp:
            tree = {
                "name": self.name,
                "primary_keys": self.schema_.primary_keys,
                "relations": [vars(r) for r in self.schema_.relations],
                "shortcuts": [vars(r) for r in self.schema_.shortcuts],
                "order": list(self.schema_.order),
                "caps": self.caps_,
                "tables": {name: model.to_dict() for name, model in self.tables_.items()},
            }
            write_json_atomic(tmp / RELATIONAL_JSON, tree)
            write_text_atomic(tmp / CONFIG_JSON, self.config_.model_dump_json(indent=2))
            write_json_atomic(tmp / VERSIONS_JSON, library_versions())
            if self.privacy_.enabled:
                write_json_atomic(tmp / PRIVACY_JSON, self.privacy_.to_dict())
            for position, name in enumerate(self.schema_.order):
                self.tables_[name].vae.save(tmp / TABLES_DIR / str(position))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> RelationalSynthesizer:
        """Load a folder written by :meth:`save`, refusing incompatible versions."""
        folder = Path(folder)
        if not (folder / RELATIONAL_JSON).is_file():
            raise ModelError(f"{folder} holds no relational model ({RELATIONAL_JSON} is missing)")
        check_plain_files(folder)
        check_versions(folder)
        tree = read_json(folder / RELATIONAL_JSON)
        self = cls()
        self.config_ = PipelineConfig.model_validate(read_json(folder / CONFIG_JSON))
        relations = tuple(Relation(**r) for r in tree["relations"])
        shortcuts = tuple(Relation(**r) for r in tree["shortcuts"])
        self.schema_ = RelationalSchema(tree["primary_keys"], relations, tuple(tree["order"]), shortcuts)
        self.tables_, self.training_ = {}, {}
        self.caps_ = tree.get("caps")
        privacy = read_json(folder / PRIVACY_JSON) if (folder / PRIVACY_JSON).is_file() else {"enabled": False}
        self.privacy_ = PrivacyReport(**privacy)
        for position, name in enumerate(self.schema_.order):
            data = tree["tables"][name]
            vae = TableVAE.load(
                folder / TABLES_DIR / str(position), self.config_, self.config_.seed + position, data["condition_dim"]
            )
            self.tables_[name] = TableModel(
                schema=Schema.from_json(data["schema"]),
                body=Schema.from_json(data["body"]),
                dates=TableDates.from_dict(data["dates"]),
                children={child: CountBands.from_dict(b) for child, b in data["children"].items()},
                key_start=data["key_start"],
                formats=data["formats"],
                vae=vae,
            )
            self.training_[name] = vae.training_
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "tables_"):
            raise ModelError("this RelationalSynthesizer is not fitted; call fit() or load() first")


# -- helpers ------------------------------------------------------------------------------------
def _grouped(
    tables: dict[str, pa.Table], schema: RelationalSchema
) -> tuple[dict[str, pa.Table], dict[str, np.ndarray]]:
    """Every child table's rows grouped by parent row (parents in their grouped order), and each
    row's parent index: position features need siblings next to each other, in date order."""
    grouped, parent_of = {}, {}
    for name in schema.order:
        table, relation = tables[name], schema.parent_relation(name)
        if relation is None:
            grouped[name] = table
            continue
        parent = grouped[relation.parent][relation.key]
        index = pc.index_in(table[relation.column], value_set=parent.combine_chunks()).to_numpy(zero_copy_only=False)
        index = index.astype(np.int64)  # integrity was checked: every row has a parent
        timestamps = [f.name for f in table.schema if pa.types.is_timestamp(f.type)]
        if timestamps:  # siblings in the order of their first timestamp (missing ones first)
            when = pc.cast(table[timestamps[0]], pa.int64()).to_numpy(zero_copy_only=False)
            order = np.lexsort((np.nan_to_num(when.astype(np.float64), nan=-np.inf), index))
        else:
            order = np.argsort(index, kind="stable")
        grouped[name] = table.take(pa.array(order))
        parent_of[name] = index[order]
    return grouped, parent_of


def _schemas(table: pa.Table, keys: list[str], config: PipelineConfig, name: str, leaf: bool) -> tuple[Schema, Schema]:
    """(the table's schema with keys as identifiers, the inferred schema of its other columns).

    Raises:
        SchemaError: a table without children has nothing but keys and identifiers to model.
    """
    rest = table.drop_columns(keys)
    if rest.num_columns == 0 and not leaf:
        body = Schema(columns=())  # a list of keys: its model draws only its children counts
    else:
        try:
            body = infer_schema(rest, _for_table(config, rest))
        except SchemaError as exc:
            raise SchemaError(f"table {name!r}: {exc}") from None
    keys_specs = {k: ColumnSpec(k, ColumnKind.IDENTIFIER, str(table.schema.field(k).type)) for k in keys}
    columns = [keys_specs.get(c) or (body[c] if c in body.names else None) for c in table.column_names]
    kept = tuple(c for c in columns if c is not None)
    full = Schema(columns=kept, dropped=body.dropped, direct_identifiers=body.direct_identifiers)
    return full, body


def _check_column_names(tables: dict[str, pa.Table], config: PipelineConfig) -> None:
    """Every column the config's ``columns:`` and ``drop:`` name is in some table.

    Raises:
        ConfigError: naming the setting and the column.
    """
    known = {column for table in tables.values() for column in table.column_names}
    for section, names in (("columns", config.columns), ("drop", config.drop)):
        for name in names:
            if name not in known:
                raise ConfigError(f"config {section}.{name}: no such column in any table ({', '.join(tables)})")


def _for_table(config: PipelineConfig, table: pa.Table) -> PipelineConfig:
    """The config with only the ``columns:`` and ``drop:`` entries of ``table``'s columns: one config
    serves every table, each column named once, in whichever table holds it."""
    here = set(table.column_names)
    columns = {name: spec for name, spec in config.columns.items() if name in here}
    return config.model_copy(update={"columns": columns, "drop": [name for name in config.drop if name in here]})


def _level_schema(body: Schema, dates: TableDates, counts: dict) -> Schema:
    """What the table's VAE sees: modelled columns, linked dates as integer steps, one count per child."""
    linked = dates.linked
    columns = [ColumnSpec(c.name, ColumnKind.NUMERICAL, "int64") if c.name in linked else c for c in body.modelled]
    columns += [ColumnSpec(COUNT + child, ColumnKind.CATEGORICAL, "double") for child in counts]
    return Schema(columns=tuple(columns))


def _drawn_counts(frame: pd.DataFrame, model: TableModel, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Rows of each child table under each generated row (the count columns leave ``frame``)."""
    bands = {child: pd.to_numeric(frame.pop(COUNT + child), errors="coerce").to_numpy() for child in model.children}
    return {child: model.children[child].decode(drawn, rng) for child, drawn in bands.items()}


def _within_cap(counts: np.ndarray, patient: np.ndarray, cap: int) -> np.ndarray:
    """``counts`` (one per row, rows grouped by ``patient``) cut so that no patient's total passes ``cap``."""
    total = np.cumsum(counts)
    before = total - counts
    first = np.r_[True, patient[1:] != patient[:-1]] if len(patient) else np.zeros(0, dtype=bool)
    used = before - np.maximum.accumulate(np.where(first, before, 0))  # this patient's rows drawn so far
    return np.clip(np.minimum(counts, cap - used), 0, None)


def _key_start(keys: pa.ChunkedArray, name: str, private: bool = False) -> int | None:
    """The first fresh integer key: past the largest real one; under DP ``10**d`` from the type's width
    alone (the largest real key would be a release), as fresh identifiers start in the flat model.

    Raises:
        SchemaError: under DP, a real key is not below that start.
    """
    if not pa.types.is_integer(keys.type):
        return None
    largest = pc.max(keys).as_py()
    if not private:
        return int(largest) + 1
    start = 10 ** min(identifiers.type_digits(keys.type), KEY_DIGITS)
    if largest is not None and largest >= start:
        raise SchemaError(f"key {name!r} has values of more than {len(str(start)) - 1} digits, where fresh keys "
                          "start under DP; store it as text or in a wider integer type")
    return start


def _fresh_keys(model: TableModel, key: str, n: int) -> pa.Array:
    """``n`` keys no real row has: integers past the largest real one, else ``syn-`` counters."""
    arrow_type = model.schema[key].arrow
    if model.key_start is not None:
        return pa.array(np.arange(model.key_start, model.key_start + n, dtype=np.int64)).cast(arrow_type)
    return identifiers.fresh_ids(arrow_type, None, 0, n)


def _keys_at(keys: pa.Array, rows: np.ndarray, spec: ColumnSpec) -> np.ndarray:
    """The generated ``keys`` of the given rows, typed as the column that carries them."""
    return pc.cast(keys, spec.arrow).take(pa.array(rows, pa.int64())).to_numpy(zero_copy_only=False)


def _empty_level(model: TableModel) -> pd.DataFrame:
    """A level frame with no rows (a table under parents that all drew zero children)."""
    spec = model.vae.schema_
    return pd.DataFrame({c.name: pd.Series([], dtype="datetime64[ns]" if c.kind is ColumnKind.DATETIME else object)
                         for c in spec.columns})
