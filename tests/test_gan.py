"""The WGAN-GP synthesizer: a penalty with known answers, round trips, seeding, and it learns."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from synth.config import parse_config
from synth.errors import ConfigError
from synth.models import get_synthesizer, load_synthesizer, synthesizer_for
from synth.models.gan import GANSynthesizer, gradient_penalty, gumbel_noise
from synth.schema import infer_schema

FAST = {"epochs": 3, "batch_size": 64, "hidden_dims": [32, 32], "latent_dim": 8}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These networks are tiny: on a loaded machine torch's intra-op threads cost more than they
    give (the training test took 57 s with the default threads, 4 s with one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Quadratic(nn.Module):
    """f(x) = sum_i a_i x_i^2 / 2, whose gradient at x is a * x."""

    def __init__(self, a: torch.Tensor):
        super().__init__()
        self.a = nn.Parameter(a)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.a * x**2).sum(dim=1)


@pytest.mark.parametrize(("weights", "expected"), [([2.0, 2.0, 1.0], 4.0), ([0.6, 0.0, 0.8], 0.0)])
def test_penalty_of_a_linear_critic_is_its_weight_norm_minus_one_squared(weights, expected):
    # f(x) = w.x + b has gradient w at every interpolate: the penalty is (||w|| - 1)^2 exactly.
    critic = nn.Linear(3, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([weights]))
    draws = torch.Generator().manual_seed(0)
    real, fake = torch.randn((16, 3), generator=draws), torch.randn((16, 3), generator=draws)
    penalty = gradient_penalty(critic, real, fake, torch.Generator().manual_seed(1))
    assert penalty.item() == pytest.approx(expected, abs=1e-6)


def test_penalty_is_the_mean_of_squares_not_the_square_of_the_mean():
    # real == fake pins every interpolate to the row itself; with a = 1 the gradient is the row,
    # so the norms are 1 and 3: mean((n - 1)^2) = (0 + 4) / 2 = 2, while (mean(n) - 1)^2 = 1.
    critic = Quadratic(torch.ones(2))
    rows = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    penalty = gradient_penalty(critic, rows, rows.clone(), torch.Generator().manual_seed(0))
    assert penalty.item() == pytest.approx(2.0)
    # The graph is kept, so the penalty trains the critic: d/da_j = mean_i 2 (n_i - 1) a_j x_ij^2 / n_i,
    # here (2 * 2 * 9 / 3) / 2 rows = 6 for a_2 and 0 for a_1 (row 1 has n = 1, row 2 has x_1 = 0).
    penalty.backward()
    assert critic.a.grad.tolist() == pytest.approx([0.0, 6.0])


def test_gumbel_noise_from_a_generator_is_torchs_gumbel_softmax():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0]])
    with torch.random.fork_rng():
        torch.manual_seed(11)
        expected = F.gumbel_softmax(logits, tau=0.3)
    noise = gumbel_noise(logits.shape, torch.Generator().manual_seed(11))
    assert torch.allclose(F.softmax((logits + noise) / 0.3, dim=1), expected)


def _mixed_table(n: int = 300) -> pa.Table:
    rng = np.random.default_rng(5)
    base = dt.datetime(2150, 3, 1, 8, 30)
    return pa.table(
        {
            "age": pa.array([None if i % 7 == 0 else int(v) for i, v in enumerate(rng.integers(18, 90, n))], pa.int64()),
            "lab": pa.array(np.round(rng.normal(5, 2, n), 1)),
            "ward": pa.array([None if i % 9 == 0 else v for i, v in enumerate(rng.choice(["ICU", "MED", "SURG"], n))]),
            "seen_at": pa.array(
                [None if i % 5 == 0 else base + dt.timedelta(hours=int(h)) for i, h in enumerate(rng.integers(0, 9_000, n))],
                pa.timestamp("us"),
            ),
            "smoker": pa.array(rng.random(n) < 0.3),
        }
    )


@pytest.fixture(scope="module")
def mixed():
    config = parse_config({"seed": 2, "model": {"name": "wgan-gp", **FAST}})
    table = _mixed_table()
    schema = infer_schema(table, config)
    return table, schema, synthesizer_for(config, schema).fit(table, schema)


def test_samples_keep_the_schema_types_and_draw_nulls(mixed):
    table, _, model = mixed
    assert isinstance(model, GANSynthesizer)
    synthetic = model.sample(400, seed=1)
    assert synthetic.schema == table.schema and synthetic.num_rows == 400
    assert set(synthetic["ward"].drop_null().to_pylist()) <= {"ICU", "MED", "SURG"}
    assert synthetic["seen_at"].null_count > 0  # the null flag is a Gumbel head like any category


def test_sampling_and_training_are_seeded(mixed):
    table, schema, model = mixed
    assert model.sample(300, seed=9).equals(model.sample(300, seed=9))
    assert not model.sample(300, seed=9).equals(model.sample(300, seed=10))
    again = get_synthesizer("wgan-gp")(model.config).fit(table, schema)
    a, b = model.generator_.state_dict(), again.generator_.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_saved_folder_is_plain_files_and_loads_to_the_same_samples(mixed, tmp_path):
    _, _, model = mixed
    folder = model.save(tmp_path / "gan")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["model.json", "config.json", "schema.json", "identifiers.json", "versions.json", "training.json",
         "privacy.json", "transformer.json", "transformer.npz", "segments.json", "model.pt"]
    )
    np.load(folder / "transformer.npz", allow_pickle=False)
    torch.load(folder / "model.pt", weights_only=True)
    loaded = load_synthesizer(folder)
    assert isinstance(loaded, GANSynthesizer)
    assert loaded.sample(500, seed=4).equals(model.sample(500, seed=4))


def test_differential_privacy_is_refused_in_one_line(mixed):
    table, schema, _ = mixed
    config = parse_config({"model": {"name": "wgan-gp", **FAST}, "privacy": {"epsilon": 1.0}})
    with pytest.raises(ConfigError, match="^model wgan-gp has no differential privacy; use vae or patient-vae$"):
        get_synthesizer("wgan-gp")(config).fit(table, schema)


def test_unknown_gan_settings_are_refused():
    with pytest.raises(ConfigError, match="model.gan.critic_step: unknown setting"):
        parse_config({"model": {"gan": {"critic_step": 5}}})


def _two_groups(n: int = 400) -> pa.Table:
    rng = np.random.default_rng(0)
    group = np.where(rng.random(n) < 0.8, "low", "high")
    value = np.where(group == "low", 10.0, 50.0) + rng.normal(0, 1, n)
    return pa.table({"group": group, "value": value})


def test_training_moves_samples_to_the_data():
    # 80% "low" rows near 10, 20% "high" rows near 50 (the draw holds 75.25% low). Untrained (1 epoch)
    # the GAN drew 52% low with both medians near 50.5; trained as here, seeds 0-3 drew 74-76% low with
    # medians 44.8-50.1 (high) and 9.2-10.8 (low): the joint, not only the marginals.
    table = _two_groups()
    model_options = {"epochs": 100, "batch_size": 64, "hidden_dims": [64, 64], "latent_dim": 8,
                     "gan": {"critic_steps": 2, "learning_rate": 1e-3}}
    config = parse_config({"seed": 0, "model": {"name": "wgan-gp", **model_options}})
    schema = infer_schema(table, config)
    model = get_synthesizer("wgan-gp")(config).fit(table, schema)
    synthetic = model.sample(2_000, seed=1).to_pandas()
    real = table.to_pandas()
    share = (synthetic["group"] == "low").mean()
    assert share == pytest.approx((real["group"] == "low").mean(), abs=0.1)
    medians = synthetic.groupby("group")["value"].median()
    assert medians["low"] == pytest.approx(10, abs=5) and medians["high"] == pytest.approx(50, abs=5)
    assert model.training_.epochs_run == 100 and len(model.training_.history) == 100


def test_the_gan_can_have_its_own_number_of_epochs():
    table = _mixed_table(100)
    config = parse_config({"seed": 2, "model": {"name": "wgan-gp", **FAST, "epochs": 5, "gan": {"epochs": 2}}})
    model = synthesizer_for(config, infer_schema(table, config)).fit(table, infer_schema(table, config))
    assert model.training_.epochs_run == 2 and [s.epoch for s in model.training_.history] == [1, 2]
    # what the progress lines count to; the VAE's own stays model.epochs
    assert config.model.planned_epochs == 2
    assert parse_config({"model": {"epochs": 5, "gan": {"epochs": 2}}}).model.planned_epochs == 5
