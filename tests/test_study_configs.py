"""The configs behind the README's studies (benchmarks/configs/) stay valid for their data.

A declared public range on a column inference calls categorical, or a public list on a
numeric one, stops a DP run only after preprocessing: caught here on the committed sample
of the same dataset instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from synth import dp_domain
from synth.config import ColumnKind, load_config
from synth.io.sources import read_table
from synth.schema import infer_schema

CONFIGS = Path(__file__).resolve().parents[1] / "benchmarks" / "configs"


def test_the_diabetes_config_declares_a_public_domain_that_fits_its_columns(diabetes_csv):
    config = load_config(CONFIGS / "diabetes130.yaml")
    schema = infer_schema(read_table(diabetes_csv, config), config)
    kinds = {c.name: c.kind for c in schema.columns}
    assert set(config.columns) <= set(kinds), set(config.columns) - set(kinds)
    public = dp_domain.declared_public(schema.columns, config.columns)  # raises on a kind mismatch
    assert len(public.ranges) == 7 and len(public.values) >= 35
    assert all(kinds[name] is ColumnKind.NUMERICAL for name in public.ranges)
    # Diagnoses are ICD-9-CM codes (public, ~1,400 candidates each) and specialties are left
    # to the threshold: they get the biggest shares.
    assert all(len(public.values[f"diag_{i}"]) > 1_300 for i in (1, 2, 3))
    shares = dp_domain.budget_weights([c for c in schema.columns if c.kind is not ColumnKind.IDENTIFIER], public)
    assert {"diag_1", "diag_2", "diag_3", "medical_specialty"} == set(sorted(shares, key=shares.get)[-4:])
    assert sum(shares[f"diag_{i}"] for i in (1, 2, 3)) > 0.35


def test_the_diabetes_comparison_config_declares_the_same_columns_as_the_sweep():
    compare, sweep = load_config(CONFIGS / "diabetes130-compare.yaml"), load_config(CONFIGS / "diabetes130.yaml")
    assert compare.columns == sweep.columns and compare.entity_key == sweep.entity_key
    assert compare.evaluation.target == sweep.evaluation.target and compare.source == sweep.source
    assert compare.model.epochs == 60 and compare.model.batch_size == 512 and not compare.privacy.enabled
    assert compare.model.gan.epochs == 5
