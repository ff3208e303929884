"""The mixed-type VAE: it learns joint structure, keeps null rates, is seeded, and DP spends at most its budget."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

from synth.config import parse_config
from synth.evaluation.quality import quality_scores
from synth.io.sources import read_table
from synth.models import get_synthesizer
from synth.models.int8 import sampling_network, wide_layers
from synth.models.network import MixedVAE
from synth.privacy import COUNT_FAILURE
from synth.schema import infer_schema
from synth.transforms import Segment


@pytest.fixture(scope="module")
def heart(heart_csv):
    config = parse_config({"seed": 1, "model": {"epochs": 150}})
    table = read_table(heart_csv, config)
    schema = infer_schema(table, config)
    model = get_synthesizer("vae")(config).fit(table, schema)
    return table, schema, model


def test_vae_beats_independent_marginals_on_column_pair_trends(heart):
    table, schema, model = heart
    real = table.to_pandas()
    synthetic = model.sample(table.num_rows, seed=2).to_pandas()
    rng = np.random.default_rng(0)
    # The baseline keeps every column's real distribution and breaks every relationship.
    independent = pd.DataFrame({c: real[c].sample(frac=1, random_state=rng.integers(2**31)).to_numpy() for c in real})
    vae = quality_scores(real, synthetic, schema)
    baseline = quality_scores(real, independent, schema)
    assert baseline["column_shapes"] > 0.99  # sanity: marginals are exact in the baseline
    assert vae["column_pair_trends"] > baseline["column_pair_trends"] + 0.03
    assert vae["column_shapes"] > 0.8


def test_nulls_come_back_at_the_real_rate(heart):
    table, _, model = heart
    synthetic = model.sample(5_000, seed=3)
    for name in ("ca", "thal", "slope"):  # 66%, 53% and 34% missing in the real data
        real_rate = table[name].null_count / table.num_rows
        assert abs(synthetic[name].null_count / synthetic.num_rows - real_rate) < 0.08, name


def test_same_seed_same_rows_other_seed_other_rows(heart):
    _, _, model = heart
    assert model.sample(500, seed=9).equals(model.sample(500, seed=9))
    assert not model.sample(500, seed=9).equals(model.sample(500, seed=10))


def test_training_is_seeded(heart_csv):
    config = parse_config({"seed": 4, "model": {"epochs": 3}})
    table = read_table(heart_csv, config)
    schema = infer_schema(table, config)
    a = get_synthesizer("vae")(config).fit(table, schema).table_.network_.state_dict()
    b = get_synthesizer("vae")(config).fit(table, schema).table_.network_.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_dp_run_reports_epsilon_within_the_target(heart_csv):
    config = parse_config({"seed": 0, "model": {"epochs": 4}, "privacy": {"epsilon": 2.0, "max_grad_norm": 1.0}})
    table = read_table(heart_csv, config)
    schema = infer_schema(table, config)
    model = get_synthesizer("vae")(config).fit(table, schema)
    report = model.privacy_
    assert report.enabled and report.unit == "row"
    assert 0 < report.epsilon_spent <= 2.0
    # Default delta: 1/(10 n_up), n_up a DP upper bound on the rows: well below 1/n.
    n_up = report.units_estimate + math.log(1 / (2 * COUNT_FAILURE)) / report.parts["count"]["epsilon"]
    assert report.delta == pytest.approx(1 / (10 * n_up))
    assert report.delta < 1 / (10 * table.num_rows) and "n_up" in report.delta_rule
    assert report.noise_multiplier > 0 and report.steps > 0
    assert model.training_.epochs_run == 4 and not model.training_.stopped_early  # no early stopping under DP
    assert model.sample(100, seed=0).num_rows == 100


def test_loss_is_summed_over_features_and_averaged_over_units():
    segments = [Segment("a", "a", "continuous"), Segment("b", "b", "discrete", 3), Segment("c", "c", "discrete", 2)]
    net = MixedVAE(segments, latent_dim=2, hidden_dims=[8])
    net.reset_parameters(torch.Generator().manual_seed(0))
    x = torch.tensor([[0.1, 2.0, 1.0], [0.5, 0.0, 0.0]])
    per_row = net(x, generator=torch.Generator().manual_seed(1))
    assert per_row.shape == (2,)
    # Patients: the same rows padded into (units, rows, segments) give per-patient sums.
    padded = torch.stack([x, torch.zeros_like(x)])  # patient 0 has both rows, patient 1 none
    mask = torch.tensor([[True, True], [False, False]])
    per_patient = net(padded, mask=mask, generator=torch.Generator().manual_seed(1))
    assert per_patient.shape == (2,) and per_patient[1] == 0
    assert per_patient[0].item() == pytest.approx(per_row.sum().item(), rel=1e-5)



def test_wide_category_columns_get_grouped_heads_that_save_and_load(diabetes_sample, tmp_path):
    from synth.models import load_synthesizer
    from synth.models.network import HEAD_CLASSES, TAIL_GROUPS

    config = parse_config({"seed": 0, "source": {"na_values": ["?"]}, "model": {"name": "vae", "epochs": 2}})
    schema = infer_schema(diabetes_sample, config)
    model = get_synthesizer("vae")(config).fit(diabetes_sample, schema)
    network = model.table_.network_
    segments = [s for s in model.table_.transformer_.segments_ if s.kind == "discrete"]
    wide = [i for i, s in enumerate(segments) if s.classes > 128]
    assert [segments[i].name for i in wide] == ["diag_1", "diag_2", "diag_3"]  # hundreds of ICD-9 codes each
    assert all(network.head_sizes[i] == HEAD_CLASSES + TAIL_GROUPS for i in wide)
    assert network.to_logits.out_features < sum(s.classes for s in segments) / 2
    model.save(tmp_path / "model")
    loaded = load_synthesizer(tmp_path / "model")
    assert loaded.table_.network_.head_sizes == network.head_sizes
    assert loaded.sample(300, seed=4).equals(model.sample(300, seed=4))
    codes = model.sample(3_000, seed=5).column("diag_1").to_pandas()
    assert codes.nunique() > HEAD_CLASSES  # tail codes are drawn too, not only the frequent ones


def test_int8_sampling_draws_what_the_float32_network_draws(heart):
    _, _, model = heart
    vae = model.table_
    int8 = vae.sampling_network()
    quantized = {name for name, m in int8.named_modules() if isinstance(m, DynamicLinear)}
    assert quantized == wide_layers(vae.network_) == {"decoder.2", "to_logits"}
    assert all(p.dtype == torch.float32 for p in vae.network_.parameters())  # the model itself is untouched
    assert sampling_network(vae.network_, int8=False) is vae.network_

    exact = vae.network_.generate(20_000, torch.Generator().manual_seed(3)).numpy()
    fast = int8.generate(20_000, torch.Generator().manual_seed(3)).numpy()
    discrete = vae.network_.discrete_index.numpy()
    continuous = vae.network_.continuous_index.numpy()
    # The same uniforms pick the classes: int8 moves a label only where a draw falls near a class edge.
    assert (exact[:, discrete] == fast[:, discrete]).mean() > 0.99
    for j in discrete:
        classes = int(max(exact[:, j].max(), fast[:, j].max())) + 1
        tv = 0.5 * np.abs(np.bincount(exact[:, j].astype(int), minlength=classes)
                          - np.bincount(fast[:, j].astype(int), minlength=classes)).sum() / len(exact)
        assert tv < 0.01, j
    assert np.abs(exact[:, continuous] - fast[:, continuous]).mean() < 0.05


def test_the_int8_sampler_follows_a_replaced_network(heart):
    _, _, model = heart
    vae = model.table_
    first = vae.sampling_network()
    assert vae.sampling_network() is first  # built once
    trained = vae.network_
    try:
        vae.network_ = copy.deepcopy(trained)  # as a DP fit of related tables replaces it
        assert vae.sampling_network() is not first
    finally:
        vae.network_ = trained
