"""`synth verify DIR` (synth.verify): a run folder against its manifest, each way it can be wrong."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from flows.cli import app
from synth.manifest import build_manifest, write_manifest
from synth.runs import LOCK
from synth.verify import verify_run_folder

PASS = {"release": {"verdict": "pass", "enforced": True, "summary": "PASS"}}
FAIL = {"release": {"verdict": "fail", "enforced": True, "summary": "FAIL"}}


def _run_folder(tmp_path, gate=PASS, rows=(3, 2)):
    out = tmp_path / "out"
    (out / "synthetic").mkdir(parents=True)
    (out / "model").mkdir()
    for k, n in enumerate(rows):
        pq.write_table(pa.table({"a": list(range(n))}), out / "synthetic" / f"part-{k:05d}.parquet")
    (out / "model" / "config.json").write_text('{"seed": 0}')
    (out / "metrics.json").write_text('{"quality_score": 0.9, "nan": NaN}')
    (out / "report.html").write_text("<html></html>")
    manifest = build_manifest(out, run={"id": "r1", "name": "brave-otter"}, source={}, schema={},
                              rows={"synthetic": sum(rows)}, model={}, privacy={"epsilon": float("nan")}, gate=gate)
    write_manifest(out, manifest)
    return out


def test_an_untouched_run_folder_verifies(tmp_path):
    out = _run_folder(tmp_path)
    result = verify_run_folder(out)
    assert result.ok, result.problems
    assert result.files == 5
    assert result.summary() == f"OK: {out} holds the 5 files its manifest lists, unchanged (brave-otter)"
    done = CliRunner().invoke(app, ["verify", str(out)])
    assert done.exit_code == 0 and "OK:" in done.output


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda out: (out / "report.html").write_text("<html>x</html>"), "report.html: 14 bytes, the manifest lists 13"),
        (lambda out: (out / "model" / "config.json").write_text('{"seed": 1}'),
         "model/config.json: content changed (SHA-256 differs from the manifest's)"),
        (lambda out: (out / "synthetic" / "part-00001.parquet").unlink(),
         "synthetic/part-00001.parquet: missing (listed in the manifest)"),
        (lambda out: pq.write_table(pa.table({"a": [9]}), out / "synthetic" / "part-00002.parquet"),
         "synthetic/part-00002.parquet: not in the manifest, yet in synthetic/, where readers take every part"),
        (lambda out: (out / "notes.txt").write_text("hello"), "notes.txt: not in the manifest"),
        (lambda out: (out / "synthetic" / ".tmp-part-00002.parquet.x1").write_bytes(b"PAR1"),
         "synthetic/.tmp-part-00002.parquet.x1: left by an interrupted write"),
        (lambda out: (out / LOCK).write_text(json.dumps({"owner": "flow run next", "pid": 7, "host": "h"})),
         ".synth-run.lock: flow run next (process 7 on h) holds the folder's lock: a run is writing here, or it "
         "crashed"),
        (lambda out: (out / "manifest.json").unlink(), "manifest.json: missing: the run did not finish"),
        (lambda out: (out / "manifest.json").write_text('{"files": ['), "manifest.json: not valid JSON"),
    ],
    ids=["size", "checksum", "missing", "extra-part", "extra-file", "leftover", "lock", "no-manifest", "bad-json"],
)
def test_each_kind_of_damage_is_named(tmp_path, damage, problem):
    out = _run_folder(tmp_path)
    damage(out)
    result = verify_run_folder(out)
    assert not result.ok
    assert any(p.startswith(problem) for p in result.problems), result.problems
    done = CliRunner().invoke(app, ["verify", str(out)])
    assert done.exit_code == 1
    assert problem[:40] in done.output and "Traceback" not in done.output


def test_a_manifest_edited_to_hide_a_change_breaks_its_seal(tmp_path):
    out = _run_folder(tmp_path)
    (out / "report.html").write_text("<html>tampered, same size?</html>")
    manifest = json.loads((out / "manifest.json").read_text())
    import hashlib

    for entry in manifest["files"]:
        if entry["path"] == "report.html":
            data = (out / "report.html").read_bytes()
            entry["bytes"], entry["sha256"] = len(data), hashlib.sha256(data).hexdigest()
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    assert verify_run_folder(out).problems == [
        "manifest.json: edited after it was written: its content no longer matches its manifest_sha256"
    ]


def test_released_data_beside_a_refused_gate_and_rows_that_do_not_add_up(tmp_path):
    out = _run_folder(tmp_path, gate=FAIL)
    assert "synthetic/: present, but the manifest's release gate refused the data (FAIL)" in verify_run_folder(out).problems

    out = _run_folder(tmp_path / "b")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["rows"]["synthetic"] = 6
    from synth.manifest import write_manifest as reseal

    reseal(out, manifest)
    assert verify_run_folder(out).problems == [
        "synthetic/: its parts hold 5 rows, the manifest states 6 synthetic rows"
    ]


def test_a_folder_that_is_not_there(tmp_path):
    assert verify_run_folder(tmp_path / "nowhere").problems == [f"no folder at {tmp_path / 'nowhere'}"]
