"""Differential privacy for related tables, the patient (a root row and every row under it) being the unit."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest
import torch

from synth.config import parse_config
from synth.models.network import MixedVAE
from synth.privacy import PrivateTraining, TrainingBudget
from synth.relational import dp
from synth.relational.counts import CountBands
from synth.relational.integrity import check_integrity
from synth.relational.model import RelationalSynthesizer
from synth.transforms import Segment
from tests.relational_tables import three_level
from tests.test_relational_run import GATE, MODEL, _extract, _run

SMALL = {"epochs": 10, "hidden_dims": [32, 32], "batch_size": 64, "latent_dim": 4}
CAPS = {"visits": 3, "labs": 6}
#: What the generated extract's columns are known to hold without looking at it: declared public, as a user would.
PUBLIC = {
    "sex": {"public_values": ["F", "M"]},
    "ward": {"public_values": ["medical", "surgical", "icu"]},
    "test": {"public_values": ["crp", "hb", "wbc"]},
    "age": {"public_range": [0, 100]},
    "value": {"public_range": [0, 150]},
    "registered": {"public_range": ["2019-01-01", "2022-01-01"]},
}


def _config(epsilon: float = 3.0, **extra) -> dict:
    tables = {"patients": {"source": "patients.csv"}}  # sources are read by the flow; fit() takes the tables
    tables |= {name: {"source": f"{name}.csv", "max_rows_per_patient": cap} for name, cap in CAPS.items()}
    return {"model": SMALL, "privacy": {"epsilon": epsilon}, "columns": PUBLIC, "tables": tables, **extra}


# -- 1. one gradient per patient over the whole tree, clipped jointly ------------------------------------
def _network(width: int, condition_dim: int, seed: int) -> MixedVAE:
    segments = [Segment(name=f"c{i}", source=f"c{i}", kind="continuous") for i in range(width)]
    network = MixedVAE(segments, latent_dim=2, hidden_dims=[8], condition_dim=condition_dim)
    network.reset_parameters(torch.Generator().manual_seed(seed))
    return network


def _units(child_rows: int) -> dp.TreeUnits:
    """One patient: a root row (3 values) and ``child_rows`` rows (2 values, conditioned on 4) in a child table."""
    values = torch.Generator().manual_seed(1)
    root = dp.TreeTable(torch.randn(1, 3, generator=values), None, torch.zeros(1, dtype=torch.long))
    child = dp.TreeTable(
        3 * torch.randn(child_rows, 2, generator=values), torch.randn(child_rows, 4, generator=values),
        torch.zeros(child_rows, dtype=torch.long),
    )
    return dp.TreeUnits([root, child])


def _clipped_gradient(tree: dp.TreeNetwork, units: dp.TreeUnits, clip: float) -> tuple[list, list]:
    """(raw, clipped) gradients of each parameter for the one patient of ``units``: the clipped one through the
    DP wiring the relational fit uses (Opacus ghost clipping), the raw one by plain autograd."""
    batch = units.__getitems__([0])
    raw_tree = copy.deepcopy(tree)
    raw_tree(**batch, generator=torch.Generator().manual_seed(5)).sum().backward()
    raw = [p.grad.clone() for p in raw_tree.parameters()]
    budget = TrainingBudget(epsilon=1.0, delta=1e-5, cap=1.0, units=100.0, max_grad_norm=clip, accountant="prv")
    optimizer = torch.optim.SGD(tree.parameters(), lr=0.0)
    private, optimizer, criterion, _ = PrivateTraining(budget).wrap(
        tree, optimizer, units, batch_size=10, epochs=1, noise_generator=torch.Generator(),
        sampling_generator=torch.Generator(),
    )
    criterion(private(**batch, generator=torch.Generator().manual_seed(5))).backward()
    clipped = [p.grad.clone() for p in tree.parameters()]
    return raw, clipped


def _norm(gradients: list) -> float:
    return float(torch.sqrt(sum((g.double() ** 2).sum() for g in gradients)))


def test_a_patients_gradient_over_all_tables_is_clipped_as_one():
    clip = 0.5
    tree = lambda: dp.TreeNetwork([_network(3, 0, seed=1), _network(2, 4, seed=2)])  # noqa: E731
    root_params = len(list(tree().networks[0].parameters()))
    few, many = {}, {}
    for rows, found in ((1, few), (12, many)):
        raw, clipped = _clipped_gradient(tree(), _units(rows), clip)
        found.update(raw=raw, clipped=clipped)
        # the known answer: the whole gradient scaled by min(1, C / ||g||), ||g|| over every table's parameters
        scale = min(1.0, clip / _norm(raw))
        assert _norm(raw) > clip  # clipping is active
        assert _norm(clipped) == pytest.approx(min(_norm(raw), clip), rel=1e-3)
        for r, c in zip(raw, clipped):
            torch.testing.assert_close(c, r * scale, rtol=1e-3, atol=1e-7)
    # The root network's raw gradient does not depend on the child rows (their condition is data) ...
    for a, b in zip(few["raw"][:root_params], many["raw"][:root_params]):
        torch.testing.assert_close(a, b)
    # ... but its clipped gradient does: more child rows take more of the patient's one norm budget.
    assert _norm(many["clipped"][:root_params]) < 0.9 * _norm(few["clipped"][:root_params])


def test_patient_batches_hold_each_tables_rows_padded_and_masked():
    patient = torch.tensor([1, 0, 1, 1])  # patient 0 has one row, patient 1 three, patient 2 none
    x = torch.arange(4, dtype=torch.float32)[:, None]
    units = dp.TreeUnits([dp.TreeTable(torch.zeros(3, 1), None, torch.arange(3)), dp.TreeTable(x, x, patient)])
    batch = units.__getitems__([2, 1])
    assert batch["x"].shape == (2, 1) and batch["x1"].shape == (2, 3, 1) and batch["condition1"].shape == (2, 3, 1)
    assert batch["mask1"].tolist() == [[False, False, False], [True, True, True]]
    assert batch["x1"][1, :, 0].tolist() == [0.0, 2.0, 3.0] and batch["x1"][0].abs().sum() == 0
    empty = units.__getitems__([])
    assert empty["x"].shape[0] == 0 and empty["x1"].shape == (0, 1, 1)


# -- contribution bounds -----------------------------------------------------------------------------
def test_rows_over_a_patients_cap_are_dropped_with_everything_under_them():
    tables, schema = three_level(n_patients=200)
    bounded, dropped = dp.bound_contributions(tables, schema, {"patients": 1, **CAPS}, np.random.default_rng(0))
    assert check_integrity(bounded, schema).problems == 0  # no lab of a dropped visit is left
    visit_owner = dict(zip(bounded["visits"]["visit_id"].to_pylist(), bounded["visits"]["patient_id"].to_pylist()))
    per_patient = {}
    for visit in bounded["labs"]["visit_id"].to_pylist():
        per_patient[visit_owner[visit]] = per_patient.get(visit_owner[visit], 0) + 1
    assert max(per_patient.values()) <= CAPS["labs"]
    assert max(np.unique(bounded["visits"]["patient_id"].to_numpy(), return_counts=True)[1]) <= CAPS["visits"]
    assert dropped["patients"] == 0 and dropped["visits"] > 0 and dropped["labs"] > 0
    assert all(bounded[n].num_rows + dropped[n] == tables[n].num_rows for n in tables)
    assert CountBands.public(6).lows == tuple(range(7))  # a parent's children: the public values 0..cap
    wide = CountBands.public(1000)
    assert wide.lows[:5] == (0, 1, 2, 3, 4) and wide.highs[-1] == 1000 and len(wide.lows) <= 50


# -- 2. a DP fit of a three-level extract ------------------------------------------------------------
@pytest.fixture(scope="module")
def dp_fit(tmp_path_factory):
    tables, schema = three_level(n_patients=400)
    model = RelationalSynthesizer().fit(tables, schema, parse_config(_config()))
    folder = model.save(tmp_path_factory.mktemp("reldp") / "model")
    synthetic = RelationalSynthesizer.load(folder).sample(400, seed=1)
    return tables, schema, model, folder, synthetic


def test_a_dp_fit_spends_at_most_epsilon_and_lists_every_part(dp_fit):
    _, _, model, folder, _ = dp_fit
    privacy = json.loads((folder / "privacy.json").read_text())
    assert privacy["enabled"] and privacy["unit"] == "patient"
    assert privacy["epsilon_spent"] <= privacy["epsilon_target"] == 3.0
    parts = privacy["parts"]
    assert set(parts) == {"count", "transforms", "networks", "contribution_bounds"}
    assert sum(p["epsilon"] for p in parts.values()) == pytest.approx(privacy["epsilon_spent"])
    assert parts["networks"]["steps"] > 0 and parts["networks"]["noise_multiplier"] > 0
    assert parts["contribution_bounds"]["caps"] == {"patients": 1, **CAPS}
    for position in range(3):  # each table's domain, named in the report and in the model folder
        assert f"tables/{position}/dp_domain.json" in parts["transforms"]["releases"]
        assert (folder / "tables" / str(position) / "dp_domain.json").is_file()
    assert privacy["noise_source"].startswith("generators keyed from the OS CSPRNG")
    assert RelationalSynthesizer.load(folder).privacy_.epsilon_spent == privacy["epsilon_spent"]
    # One DP-SGD run: every table's network reports the same training.
    reports = [json.loads((folder / "tables" / str(p) / "training.json").read_text()) for p in range(3)]
    assert all(r == reports[0] for r in reports) and reports[0]["rows"] is None  # the exact row count is not kept


def test_dp_synthetic_tables_keep_their_keys_fresh_and_counts_within_the_caps(dp_fit):
    real, schema, _, _, synthetic = dp_fit
    assert check_integrity(synthetic, schema).problems == 0  # 0 orphans, no duplicate or null key
    for name, key in schema.primary_keys.items():
        assert not set(synthetic[name][key].to_pylist()) & set(real[name][key].to_pylist())  # fresh keys
    for child, parent_key in (("visits", "patient_id"), ("labs", "visit_id")):
        counts = pc.value_counts(synthetic[child][parent_key]).field("counts").to_numpy()
        assert counts.max() <= CAPS[child]
    # and no synthetic patient has more rows in a table than a real one could contribute
    owner = dict(zip(synthetic["visits"]["visit_id"].to_pylist(), synthetic["visits"]["patient_id"].to_pylist()))
    labs = np.unique([owner[v] for v in synthetic["labs"]["visit_id"].to_pylist()], return_counts=True)[1]
    assert labs.max() <= CAPS["labs"]
    assert synthetic["visits"].num_rows > 0 and synthetic["labs"].num_rows > 0


def _weights(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("model.pt")}


def test_dp_noise_is_not_the_seeds_two_fits_with_one_seed_differ_in_every_table(dp_fit, tmp_path):
    tables, schema, model, folder, _ = dp_fit
    again = RelationalSynthesizer().fit(tables, schema, model.config_).save(tmp_path / "again")
    first, second = _weights(folder), _weights(again)
    assert set(first) == {f"tables/{p}/model.pt" for p in range(3)} and model.config_.seed == 0
    assert all(first[k] != second[k] for k in first)


# -- 3. the CLI end to end ---------------------------------------------------------------------------


@pytest.mark.e2e
def test_synth_run_with_epsilon_on_a_relational_config(tmp_path, monkeypatch):
    """`synth run --config` with privacy.epsilon: 3 on the three-level extract (patients in SQLite, CSVs)."""
    config = _extract(tmp_path / "extract")
    config.write_text(
        config.read_text().replace(MODEL, "").replace(GATE, "")
        + "model: {epochs: 5, hidden_dims: [32, 32], batch_size: 64, latent_dim: 4}\n"
        + "privacy: {epsilon: 3}\nseed: 11\ngate: {enforce: false, reason: generated test data}\n"
        + "columns: " + json.dumps(PUBLIC) + "\n"
    )
    out = tmp_path / "out"
    done = _run(config, out, tmp_path, monkeypatch)
    console = done.stdout + done.stderr
    assert done.returncode == 0, console[-3000:]
    privacy = json.loads((out / "model" / "privacy.json").read_text())
    assert privacy["epsilon_spent"] <= 3 and set(privacy["parts"]) >= {"count", "transforms", "networks"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["privacy"]["enabled"] and manifest["privacy"]["unit"] == "patient"
    assert manifest["privacy"]["epsilon"] == pytest.approx(privacy["epsilon_spent"])
    assert manifest["privacy"]["contribution_bounds"]["labs"] == 64  # the default: entity.max_rows_per_entity
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epsilon"] == pytest.approx(privacy["epsilon_spent"]) and set(metrics["orphans"].values()) == {0}
    assert sorted(p.name for p in (out / "synthetic").iterdir()) == ["labs", "patients", "visits"]
    assert "the patient being the unit across all tables" in console and "epsilon spent" in console
    assert 'id="epsilon"' in (out / "report.html").read_text()
