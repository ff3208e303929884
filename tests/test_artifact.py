"""The model folder: plain files, weights-only loading, version checks, clear errors."""

from __future__ import annotations

import json
import pickle

import pytest

from synth.config import parse_config
from synth.errors import ModelError
from synth.io.sources import read_table
from synth.models import get_synthesizer, load_synthesizer
from synth.schema import infer_schema


@pytest.fixture(scope="module")
def saved(heart_csv, tmp_path_factory):
    config = parse_config({"model": {"epochs": 2}, "seed": 3})
    table = read_table(heart_csv, config)
    model = get_synthesizer("vae")(config).fit(table, infer_schema(table, config))
    folder = tmp_path_factory.mktemp("artifact") / "model"
    model.save(folder)
    return model, folder


def test_folder_holds_plain_files_and_loads_to_the_same_model(saved):
    model, folder = saved
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [
            "config.json",
            "identifiers.json",
            "level_schema.json",
            "model.json",
            "model.pt",
            "privacy.json",
            "schema.json",
            "segments.json",
            "training.json",
            "transformer.json",
            "transformer.npz",
            "versions.json",
        ]
    )
    loaded = get_synthesizer("vae").load(folder)
    assert loaded.config == model.config and loaded.schema_ == model.schema_
    assert loaded.sample(300, seed=1).equals(model.sample(300, seed=1))


class _Exploit:
    def __reduce__(self):
        return (print, ("this would have run arbitrary code",))


def test_a_pickle_planted_as_weights_is_refused(saved, tmp_path):
    _, folder = saved
    copy = _copy(folder, tmp_path / "model")
    (copy / "model.pt").write_bytes(pickle.dumps({"weights": _Exploit()}))
    with pytest.raises(ModelError, match="cannot load the weights"):
        get_synthesizer("vae").load(copy)


def test_incompatible_library_versions_are_refused_with_the_reason(saved, tmp_path):
    _, folder = saved
    copy = _copy(folder, tmp_path / "model")
    versions = json.loads((copy / "versions.json").read_text())
    versions["torch"] = "1.13.1"
    (copy / "versions.json").write_text(json.dumps(versions))
    with pytest.raises(ModelError, match=r"torch 1\.13\.1 \(saved\) vs 2\.13\.0"):
        get_synthesizer("vae").load(copy)


def test_a_model_saved_by_another_version_is_refused_in_one_line(saved, tmp_path):
    """A folder from before a setting was removed (0.1's gate.max_exact_copies): retrain, said plainly."""
    _, folder = saved
    copy = _copy(folder, tmp_path / "model")
    config = json.loads((copy / "config.json").read_text())
    config["gate"]["max_exact_copies"] = 0
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match=r"gate\.max_exact_copies: Extra inputs are not permitted.*retrain the model"):
        get_synthesizer("vae").load(copy)
    versions = json.loads((copy / "versions.json").read_text())
    versions["synth-pipeline"] = "0.1.0"
    (copy / "versions.json").write_text(json.dumps(versions))
    with pytest.raises(ModelError, match=r"synth-pipeline 0\.1\.0 \(saved\) vs 0\.2\.\d+ \(installed\)"):
        get_synthesizer("vae").load(copy)


def test_missing_folder_or_file_is_a_clear_error(saved, tmp_path):
    with pytest.raises(ModelError, match="model folder not found"):
        get_synthesizer("vae").load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="missing versions.json"):
        get_synthesizer("vae").load(tmp_path / "empty")


def test_save_is_atomic_over_an_existing_model(saved, tmp_path):
    model, _ = saved
    target = tmp_path / "model"
    model.save(target)
    first = (target / "model.pt").read_bytes()
    model.save(target)
    assert (target / "model.pt").read_bytes() == first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def _copy(folder, target):
    """A copy of a model folder to tamper with."""
    target.mkdir()
    for path in folder.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    return target


def test_a_model_folder_holding_a_link_is_refused(saved, tmp_path):
    """A file of the folder that is a link would make loading read a file outside it."""
    _, folder = saved
    copy = _copy(folder, tmp_path / "model")
    outside = tmp_path / "elsewhere.json"
    outside.write_text((copy / "transformer.json").read_text())
    (copy / "transformer.json").unlink()
    (copy / "transformer.json").symlink_to(outside)
    with pytest.raises(ModelError, match="transformer.json is a link .* plain files only"):
        load_synthesizer(copy)
    with pytest.raises(ModelError, match="is a link"):
        get_synthesizer("vae").load(copy)


def test_an_object_array_planted_in_the_transformer_state_is_refused(saved, tmp_path):
    """Object arrays in an .npz are pickles: the transformer's state refuses them."""
    import io

    import numpy as np

    _, folder = saved
    copy = _copy(folder, tmp_path / "model")
    with np.load(copy / "transformer.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays[next(iter(arrays))] = np.array([_Exploit()], dtype=object)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    (copy / "transformer.npz").write_bytes(buffer.getvalue())
    with pytest.raises(ModelError, match="Object arrays cannot be loaded"):
        get_synthesizer("vae").load(copy)
