"""Several synthesizers (or one at several privacy budgets) on one split, one evaluation, one table.

A comparison is a list of :class:`Variant`: a label, a registered model and the config
settings it changes. :func:`run_variant` fits one variant on the prepared training split,
samples from it and judges the sample against the same holdout, with the same evaluation
settings, gate and seed as ``synth run``; it returns one row of :data:`COLUMNS`. An ε sweep
is a comparison whose variants differ only in ``privacy.epsilon`` (:func:`epsilon_variants`).
:func:`write_comparison` writes ``compare.csv``, ``compare.md`` and ``compare.html``.

Each variant keeps its model folder and ``metrics.json`` under ``DIR/variants/<slug>/``;
its synthetic rows are deleted once judged: a comparison is a study, not a release.
"""

from __future__ import annotations

import math
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field

from synth.config import PipelineConfig, parse_config
from synth.errors import ConfigError, SynthError
from synth.evaluation import evaluate
from synth.io.atomic import write_json_atomic, write_text_atomic
from synth.models import REGISTRY, get_synthesizer, synthesizer_for
from synth.models.patient import PatientSynthesizer
from synth.models.vae import VAESynthesizer
from synth.preprocess import Prepared, holdout_sample, training_sample
from synth.sampling import fakes_to_avoid, model_fingerprint, sample_to_parquet
from synth.schema import Schema

#: The columns of ``compare.csv``, in order (``epsilon``: the target, empty for no DP).
COLUMNS = [
    "label", "model", "epsilon", "epsilon_spent", "quality_score", "column_shapes", "column_pair_trends", "tstr",
    "trtr", "utility_ratio", "mia_auc", "dcr_median", "dcr_holdout_median", "dcr_ratio", "exact_copies", "gate",
    "fit_seconds", "sample_seconds", "rows", "error",
]
#: The default ε sweep; ``None`` is ε = ∞ (no differential privacy).
DEFAULT_EPSILONS: list[float | None] = [0.5, 1.0, 3.0, 10.0, None]
AUTO = "auto"
VARIANTS_DIR = "variants"
_VAE_FAMILY = (VAESynthesizer.name, PatientSynthesizer.name)


class Variant(BaseModel):
    """One synthesizer set-up in a comparison.

    Args:
        label: its name in the table and the plots (unique within a comparison).
        model: a registered model name, or ``auto`` (the patient VAE with an entity key, else the VAE).
        overrides: config sections this variant changes, e.g. ``{"privacy": {"epsilon": 1.0}}``;
            a ``None`` value unsets the setting (``{"privacy": {"epsilon": None}}`` turns DP off).
    """

    label: str
    model: str
    overrides: dict[str, Any] = Field(default_factory=dict)

    @property
    def slug(self) -> str:
        """The label as a folder name."""
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", self.label.replace("∞", "inf").replace("ε", "epsilon")).strip("-")

    def config(self, base: PipelineConfig) -> PipelineConfig:
        """``base`` with this variant's model and overrides, validated again."""
        data = base.model_dump(mode="json")
        for section, values in self.overrides.items():
            data[section] = {**(data.get(section) or {}), **values} if isinstance(values, dict) else values
        data["model"] = {**data["model"], "name": self.model}
        return parse_config(data, origin=f"variant {self.label}")


def check_models(names: list[str]) -> list[str]:
    """``names`` without repeats, each a registered model or ``auto``.

    Raises:
        ConfigError: a name is not registered (the message lists the choices).
    """
    unknown = [name for name in names if name != AUTO and name not in REGISTRY]
    if unknown:
        raise ConfigError(f"unknown model {', '.join(map(repr, unknown))}; choose from {', '.join([AUTO, *REGISTRY])}")
    return list(dict.fromkeys(names))


def model_variants(names: list[str] | None, schema: Schema) -> list[Variant]:
    """One variant per model; by default every registered model suited to the extract.

    The default is the VAE ``auto`` picks for this schema (the patient VAE when it has an
    entity key) and every registered model outside the VAE family, so a synthesizer
    added to the registry joins the comparison without a change here.
    """
    chosen = check_models(names) if names else [AUTO, *(n for n in REGISTRY if n not in _VAE_FAMILY)]
    resolved = [_resolve(name, schema) for name in chosen]
    return [Variant(label=name, model=name) for name in dict.fromkeys(resolved)]


def epsilon_variants(epsilons: list[float | None] | None, model: str = AUTO) -> list[Variant]:
    """One variant per privacy budget, smallest ε first and ε = ∞ (``None``, no DP) last."""
    check_models([model])
    budgets = sorted(dict.fromkeys(DEFAULT_EPSILONS if epsilons is None else epsilons), key=_epsilon_order)
    return [
        Variant(label=f"ε={epsilon_label(e)}", model=model,
                overrides={"privacy": {"epsilon": e, "max_epsilon": None}})
        for e in budgets
    ]


def epsilon_label(epsilon: float | None) -> str:
    """``0.5``, ``1``, ``10``; ``∞`` for no budget."""
    return "∞" if epsilon is None or math.isinf(epsilon) else f"{epsilon:g}"


def run_variant(
    variant: Variant,
    prepared: Prepared,
    config: PipelineConfig,
    output: str | Path,
    rows: int | None = None,
    **fit_options: Any,
) -> dict:
    """Fit, sample and evaluate one variant; its row of the comparison table.

    The real rows are the ones ``synth run`` uses: the seeded training sample of the clean
    training split (``model.max_training_rows``) to fit and to compare with, and the seeded
    holdout sample; the evaluation settings, gate and seed are ``config``'s. A problem the
    user can fix (a baseline asked for differential privacy, say) becomes the row's
    ``error``, so the other variants still compare; a bug raises.

    Args:
        variant: the model and settings.
        prepared: the clean dataset written by preprocessing.
        config: the comparison's config; the variant's overrides are applied to it.
        output: the comparison's output folder; the variant writes ``variants/<slug>/`` in it.
        rows: synthetic rows (default: ``sampling.rows``, else as many as the training split).
        **fit_options: passed to ``fit`` (``on_epoch``, ``checkpoint_dir``).
    """
    folder = Path(output) / VARIANTS_DIR / variant.slug
    row: dict = {"label": variant.label, "model": variant.model}
    try:
        config = variant.config(config)
        row |= {"epsilon": config.privacy.epsilon}
        schema = prepared.schema
        train = training_sample(prepared.clean_dir, config.model.max_training_rows, config.seed, schema.names)
        synthesizer = synthesizer_for(config, schema)
        row["model"] = synthesizer.name  # ``auto`` resolved
        started = time.perf_counter()
        synthesizer.fit(train, schema, **fit_options)
        fit_seconds = time.perf_counter() - started
        model_dir = synthesizer.save(folder / "model")
        sampled = sample_to_parquet(
            synthesizer, rows or config.sampling.rows or prepared.train_rows, folder / "synthetic", seed=config.seed,
            chunk_rows=config.sampling.chunk_rows, fingerprint=model_fingerprint(model_dir),
            avoid=fakes_to_avoid(synthesizer, prepared.clean_dir),
        )
        holdout = holdout_sample(prepared.clean_dir, config.evaluation.holdout_rows, config.seed, schema.names)
        metrics = evaluate(train, sampled.folder, schema, config.evaluation, seed=config.seed, holdout=holdout,
                           gate=config.gate, constraints=config.constraints)
    except SynthError as error:
        return _row(row | {"error": str(error)})
    finally:
        shutil.rmtree(folder / "synthetic", ignore_errors=True)
    write_json_atomic(folder / "metrics.json", {k: v for k, v in metrics.items() if k != "figures"})
    return _row(row | _headline(metrics) | {
        "epsilon_spent": synthesizer.privacy_.epsilon_spent,
        "fit_seconds": fit_seconds,
        "sample_seconds": sampled.seconds,
    })


def write_comparison(
    rows: list[dict], output: str | Path, title: str = "Synthesizer comparison", sweep: bool = False
) -> dict[str, Path]:
    """``compare.csv``, ``compare.md`` and ``compare.html`` in ``output``, each written atomically.

    ``sweep``: the rows are one model at several ε, in order; the page adds curves against ε.
    """
    from synth.report.compare import write_compare_page

    output = Path(output)
    table = comparison_frame(rows)
    return {
        "csv": write_text_atomic(output / "compare.csv", table.to_csv(index=False)),
        "md": write_text_atomic(output / "compare.md", markdown_table(rows)),
        "html": write_compare_page(rows, output / "compare.html", title, sweep),
    }


def comparison_frame(rows: list[dict]) -> pd.DataFrame:
    """The rows as a frame with :data:`COLUMNS`, in order."""
    return pd.DataFrame([_row(r) for r in rows], columns=COLUMNS)


def markdown_table(rows: list[dict]) -> str:
    """The headline columns as a GitHub markdown table (ε = ∞ for no differential privacy)."""
    header, body = table_cells(rows)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |" for cells in body]
    notes = [f"* {model}: {note}" for model, note in privacy_notes(rows)]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def privacy_notes(rows: list[dict]) -> list[tuple[str, str]]:
    """Each compared model's own statement of what it keeps of the real rows (SMOTE: it interpolates them)."""
    from synth.models import REGISTRY

    models = dict.fromkeys(r.get("model") for r in rows)
    return [(m, REGISTRY[m].privacy_note) for m in models if m in REGISTRY and getattr(REGISTRY[m], "privacy_note", "")]


def table_cells(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """The header and the formatted cells of the headline table (a variant that did not run: its error)."""
    header = ["synthesizer", "ε", "quality", "column shapes", "pair trends", "TSTR", "utility ratio", "MIA AUC",
              "DCR / holdout DCR", "exact copies", "gate", "fit s", "sample s"]
    body = []
    for r in map(_row, rows):
        if r["error"]:
            cells = [r["label"], epsilon_label(r["epsilon"]), f"error: {r['error']}"] + [""] * (len(header) - 3)
        else:
            cells = [
                r["label"], epsilon_label(r["epsilon"]), *(_fmt(r[k]) for k in (
                    "quality_score", "column_shapes", "column_pair_trends", "tstr", "utility_ratio", "mia_auc")),
                f"{_fmt(r['dcr_median'])} / {_fmt(r['dcr_holdout_median'])}", _fmt(r["exact_copies"]), r["gate"],
                _fmt(r["fit_seconds"], 1), _fmt(r["sample_seconds"], 1),
            ]
        body.append([str(c) for c in cells])
    return header, body


def _resolve(name: str, schema: Schema) -> str:
    if name != AUTO:
        return get_synthesizer(name).name
    return PatientSynthesizer.name if schema.entity_key else VAESynthesizer.name


def _epsilon_order(epsilon: float | None) -> float:
    return math.inf if epsilon is None else epsilon


def _headline(metrics: dict) -> dict:
    headline = (metrics.get("utility") or {}).get("headline")
    gate = metrics["gate"]
    failed = [c["name"] for c in gate["checks"] if not c["passed"]]
    dcr, baseline = metrics.get("dcr_median"), metrics.get("dcr_holdout_median")
    return {
        "quality_score": metrics["quality_score"],
        "column_shapes": metrics["column_shapes"],
        "column_pair_trends": metrics["column_pair_trends"],
        "tstr": (metrics.get("tstr") or {}).get(headline),
        "trtr": (metrics.get("trtr") or {}).get(headline),
        "utility_ratio": metrics.get("utility_ratio"),
        "mia_auc": metrics["mia_auc"],
        "dcr_median": dcr,
        "dcr_holdout_median": baseline,
        # Below 1: synthetic rows sit nearer the training rows than unseen real rows do.
        "dcr_ratio": dcr / baseline if dcr is not None and baseline else None,
        "exact_copies": metrics["exact_collisions"],
        "gate": "pass" if gate["verdict"] == "pass" else "fail: " + ", ".join(failed),
        "rows": metrics["rows"],
    }


def _row(values: dict) -> dict:
    return {column: values.get(column) for column in COLUMNS}


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"
