"""Tests for synth.work and the paths a config names: private work folders, `synth clean`, roots, no unpickling."""

from __future__ import annotations

import json
import os
import re
import stat
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from synth.config import load_config
from synth.errors import ConfigError
from synth.runs import open_work_dir
from synth.work import RUN_RECORD, check_outside, find_work_dirs, make_private, remove_work_dir, select_work_dirs
from tests.conftest import REPO


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.lstat().st_mode) for p in [root, *root.rglob("*")]}


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_work_folders_are_owner_only_whatever_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        work = open_work_dir("k" * 20, tmp_path / "cache" / "work", output="out/run")
        folder = Path(work.path)
        (folder / "clean" / "train").mkdir(parents=True)
        (folder / "clean" / "train" / "part-0.parquet").write_text("real rows")
        (folder / "stats.json").write_text("{}")
        (folder / "link").symlink_to("/etc/hostname")
        make_private(folder)
    finally:
        os.umask(old)
    modes = _modes(tmp_path / "cache")
    link = modes.pop(str(Path("work") / ("k" * 20) / "link"))
    assert {m for name, m in modes.items() if (tmp_path / "cache" / name).is_dir()} == {0o700}
    assert {m for name, m in modes.items() if (tmp_path / "cache" / name).is_file()} == {0o600}
    assert stat.S_IMODE(os.stat("/etc/hostname").st_mode) != 0o600 and link  # a link's target is left alone
    assert json.loads((folder / RUN_RECORD).read_text())["output"] == "out/run"


def _work(root: Path, key: str, output: str, days_unused: float) -> Path:
    folder = Path(open_work_dir(key, root, output=output).path)
    record = json.loads((folder / RUN_RECORD).read_text())
    (folder / RUN_RECORD).write_text(json.dumps(record | {"used": time.time() - days_unused * 86_400}))
    (folder / "clean.parquet").write_bytes(b"x" * 1000)
    return folder


def test_clean_lists_then_removes_all_old_or_one_outputs_work_folders(tmp_path):
    root = tmp_path / "work"
    old = _work(root, "a" * 20, str(tmp_path / "out" / "jan"), days_unused=40)
    recent = _work(root, "b" * 20, str(tmp_path / "out" / "feb"), days_unused=1)
    other = _work(root, "c" * 20, "s3://bucket/releases/mar", days_unused=3)
    (root / "notes").mkdir()  # not a work folder: never listed nor removed
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("not the work root's")
    (root / "elsewhere").symlink_to(tmp_path / "out")
    found = find_work_dirs(root)
    assert [w.path for w in found] == [old, other, recent] and found[0].bytes >= 1000
    assert select_work_dirs(found, older_than_days=30) == found[:1]
    assert [w.path for w in select_work_dirs(found, output=str(tmp_path / "out" / "feb" / ".." / "feb"))] == [recent]
    assert [w.path for w in select_work_dirs(found, output="s3://bucket/releases/mar/")] == [other]

    runner = CliRunner()
    args = ["clean", "--work-dir", str(root)]
    listed = runner.invoke(app, args, env={"COLUMNS": "400"})
    assert listed.exit_code == 0 and "found 3" in listed.output and "--older-than" in listed.output
    dry = runner.invoke(app, [*args, "--older-than", "30", "--dry-run"], env={"COLUMNS": "400"})
    assert dry.exit_code == 0 and "would remove 1" in dry.output and str(old) in dry.output and old.exists()
    assert runner.invoke(app, [*args, "--older-than", "30"]).exit_code == 0
    assert not old.exists() and recent.exists()
    assert runner.invoke(app, [*args, "--all"]).exit_code == 0
    assert sorted(p.name for p in root.iterdir()) == ["elsewhere", "notes"]
    assert (tmp_path / "out" / "keep.txt").is_file()  # the link's target was never entered
    with pytest.raises(ConfigError, match="not a work folder"):
        remove_work_dir(root / "notes")


def test_a_work_root_inside_the_output_folder_is_refused(tmp_path):
    out = tmp_path / "out" / "run"
    out.mkdir(parents=True)
    with pytest.raises(ConfigError, match="inside the output folder"):
        check_outside(out / "sub" / ".." / "work", out)
    with pytest.raises(ConfigError, match="inside the output folder"):
        check_outside(out, out)
    (tmp_path / "sneaky").symlink_to(out)
    with pytest.raises(ConfigError, match="inside the output folder"):
        check_outside(tmp_path / "sneaky" / "work", out)
    check_outside(tmp_path / "work", out)  # beside it is fine
    check_outside(tmp_path / "out", out / "x")  # an output inside the work root: its own folder, hashed apart


def test_a_relative_suite_is_read_from_the_configs_folder_and_may_not_leave_it(tmp_path, monkeypatch):
    configs = tmp_path / "configs"
    (configs / "suites").mkdir(parents=True)
    (configs / "suites" / "monthly.json").write_text('{"expectations": []}')
    (configs / "ok.yaml").write_text("validation: {suite: suites/monthly.json}\n")
    monkeypatch.chdir(tmp_path)  # not the config's folder: the path is still found beside the config
    assert load_config(configs / "ok.yaml").validation.suite == str((configs / "suites" / "monthly.json").resolve())
    (configs / "out.yaml").write_text("validation: {suite: ../../etc/passwd}\n")
    with pytest.raises(ConfigError, match=r"validation.suite '\.\./\.\./etc/passwd' leads out of the config's folder"):
        load_config(configs / "out.yaml")
    (configs / "abs.yaml").write_text(f"validation: {{suite: {configs / 'suites' / 'monthly.json'}}}\n")
    assert load_config(configs / "abs.yaml").validation.suite == str(configs / "suites" / "monthly.json")


def test_no_loader_can_unpickle():
    """Every torch.load takes weights only and every np.load refuses object arrays; nothing else deserialises code."""
    sources = {p: p.read_text() for p in (REPO / "synth").rglob("*.py")}
    calls = 0
    for path, text in sources.items():
        for call in re.findall(r"torch\.load\(.*", text):
            assert "weights_only=True" in call, f"{path}: {call}"
            calls += 1
        for call in re.findall(r"np\.load\(.*", text):
            assert "allow_pickle=False" in call, f"{path}: {call}"
            calls += 1
        assert not re.search(r"pickle\.loads?\(|joblib\.load|read_pickle|dill\.|cloudpickle", text), path
    assert calls >= 4  # the weights, the training checkpoint, the transformer state, the key buckets
