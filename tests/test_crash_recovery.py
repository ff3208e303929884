"""``kill -9`` at every stage of ``synth run``, then the same command again; and runs side by side.

Real processes, really killed: ``SYNTH_TEST_CRASH_AT`` (see :mod:`synth.crashpoints`) makes
``synth run`` send itself SIGKILL at a chosen point, and the test then kills what is left
of its process group (the Dask workers), as the end of a container would. The commands talk
to one Prefect server (as workers do), so the flow runs killed stay ``Running`` there, as
they would in production.

Two uninterrupted runs on different outputs, started together with a third on one of
those outputs, are the baseline: the third is refused, the two share the work cache and
produce the same bytes. A chain of runs on a third output is then killed once per stage:
in preprocessing, training, sampling and evaluation, each rerun of the same command
resuming what the last one left, and the last one finishing with the baseline's bytes.
Tiny data (2,500 diabetes-130 rows of 10 columns, three partitions, three chunks), a small
network, two epochs.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings

from synth.runs import LOCK
from synth.verify import verify_run_folder
from tests.conftest import SMALL_EVALUATION
from tests.prefect_server import REPO, prefect_server  # noqa: F401  (fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CONFIG = """
seed: 0
source: {na_values: ["?"]}
entity_key: patient_nbr
columns: {encounter_id: identifier}
model: {epochs: 2, hidden_dims: [64], latent_dim: 8}
preprocess: {partition_rows: 1000, workers: 1}
sampling: {chunk_rows: 1000}
gate: {enforce: false, reason: "crash-recovery tests: released whatever the verdict, to compare the bytes"}
""" + SMALL_EVALUATION
COLUMNS = ["encounter_id", "patient_nbr", "race", "gender", "age", "admission_type_id", "time_in_hospital",
           "num_lab_procedures", "num_medications", "readmitted"]
SYNTH = [sys.executable, "-m", "flows.cli"]
PARTS = ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]


class Runs:
    """``synth run`` commands on one extract and config, sharing a Prefect server and a work cache."""

    def __init__(self, root: Path, server):
        self.root = root
        self.extract = root / "extract.csv"
        frame = pl.read_csv(REPO / "tests" / "data" / "diabetes_130_10k.csv", infer_schema_length=None)
        frame.select(COLUMNS).sample(2_500, seed=3).write_csv(self.extract)
        self.config = root / "config.yaml"
        self.config.write_text(CONFIG)
        self.server = server
        self.env = server.env(XDG_CACHE_HOME=str(root / "cache"), PREFECT_LOGGING_LEVEL="INFO")
        self.started, self.logs = 0, {}

    def start(self, output: str, *extra: str, crash_at: str | None = None, source: Path | None = None,
              config: Path | None = None) -> subprocess.Popen:
        env = self.env | ({"SYNTH_TEST_CRASH_AT": crash_at} if crash_at else {})
        command = [*SYNTH, "run", "--source", str(source or self.extract), "--output", str(self.root / output),
                   "--config", str(config or self.config), *extra]
        self.started += 1
        with (self.root / f"console-{self.started}.log").open("w") as log:
            process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
                                       start_new_session=True)
        self.logs[process.pid] = Path(log.name)
        return process

    def finish(self, process: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
        """Wait for ``process``; kill what is left of its group; its exit status and console."""
        try:
            process.wait(timeout)
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)  # Dask workers of a killed run: a dead container's too
            except ProcessLookupError:
                pass
        return process.returncode, self.logs[process.pid].read_text()

    def run(self, output: str, *extra: str, **options) -> tuple[int, str]:
        return self.finish(self.start(output, *extra, **options))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, prefect_server) -> Runs:  # noqa: F811
    return Runs(tmp_path_factory.mktemp("crash"), prefect_server)


@pytest.fixture(scope="module")
def baseline(runs) -> dict:
    """Three commands at once: two on output ``a``, one on output ``b`` (work folders kept, to count them)."""
    started = {"a1": runs.start("a", "--keep-work"), "a2": runs.start("a", "--keep-work"),
               "b": runs.start("b", "--keep-work")}
    return {name: runs.finish(process) for name, process in started.items()}


def test_two_runs_on_one_output_one_is_refused_and_runs_on_two_outputs_share_the_work_cache(runs, baseline):
    (winner, loser) = sorted((baseline["a1"], baseline["a2"]), key=lambda done: done[0])
    assert winner[0] == 0, winner[1][-3000:]
    assert loser[0] == 1, loser[1][-3000:]
    said = " ".join(loser[1].split())
    assert f"error: {runs.root / 'a'} is being written by another run (flow run " in said
    assert "Traceback" not in loser[1]
    assert baseline["b"][0] == 0, baseline["b"][1][-3000:]

    for output in ("a", "b"):  # never interleaved: each folder is exactly its own run's
        check = verify_run_folder(runs.root / output)
        assert check.ok, check.problems
    manifests = [json.loads((runs.root / o / "manifest.json").read_text()) for o in ("a", "b")]
    assert manifests[0]["run"]["id"] != manifests[1]["run"]["id"]
    assert _parts(runs.root / "a") == _parts(runs.root / "b")  # one seed, one config: the same bytes
    work = sorted(p.name for p in (runs.root / "cache" / "synth-pipeline" / "work").iterdir())
    assert len(work) == 2  # one work folder per output; the refused run found its winner's


def test_kill_9_at_every_stage_then_the_same_command_finishes_with_the_same_bytes(runs, baseline):
    out = runs.root / "c"

    code, console = runs.run("c", crash_at="preprocess.partition:1")
    assert code == -signal.SIGKILL, console[-3000:]
    _only_complete_outputs(out)
    assert (out / LOCK).exists()  # the dead run's lock: the next run takes it over

    code, console = runs.run("c", crash_at="train.epoch:3")  # the row network's first epoch
    assert code == -signal.SIGKILL, console[-3000:]
    assert "partitions already clean (earlier attempt)" in console
    _only_complete_outputs(out)

    code, console = runs.run("c", crash_at="sample.chunk:2")
    assert code == -signal.SIGKILL, console[-3000:]
    assert re.search(r"Task run 'preprocess-extract-\w+' - Finished in state Cached", console)
    assert "resumed after epoch 1" in console  # from the checkpoint, not from scratch
    _only_complete_outputs(out)
    written = {p: (out / "staging" / p).stat().st_mtime_ns for p in PARTS[:2]}
    assert not (out / "staging" / PARTS[2]).exists()

    code, console = runs.run("c", crash_at="evaluate")
    assert code == -signal.SIGKILL, console[-3000:]
    assert "reusing the model already trained on this data and config" in console
    assert "sampled 2,500 rows in 3 parts (2 already on disk)" in console
    assert {p: (out / "staging" / p).stat().st_mtime_ns for p in PARTS[:2]} == written  # only the missing part
    _only_complete_outputs(out)

    code, console = runs.run("c")
    assert code == 0, console[-3000:]
    assert "(3 already on disk)" in console
    check = verify_run_folder(out)
    assert check.ok, check.problems
    assert _parts(out) == _parts(runs.root / "a")  # byte for byte the uninterrupted run's data
    done = subprocess.run([*SYNTH, "verify", str(out)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0 and f"OK: {out} holds the" in done.stderr


def test_kill_9_during_dp_training_resumes_with_its_accountant_and_a_refused_release_fails_the_run(
    runs, heart_csv, prefect_server  # noqa: F811
):
    config = runs.root / "dp.yaml"
    config.write_text(
        "seed: 0\nmodel: {epochs: 2, hidden_dims: [64], latent_dim: 8}\nprivacy: {accountant: rdp}\n"
        "gate: {min_quality: 1.0}\n" + SMALL_EVALUATION  # the release is refused: no quality reaches 1
    )
    dp = {"source": heart_csv, "config": config}
    code, console = runs.run("dp", "--dp-epsilon", "3", crash_at="train.epoch:1", **dp)
    assert code == -signal.SIGKILL, console[-3000:]

    code, console = runs.run("dp", "--dp-epsilon", "3", **dp)
    assert code == 3, console[-3000:]  # the release gate refused the data
    assert "resumed after epoch 1" in console
    privacy = json.loads((runs.root / "dp" / "model" / "privacy.json").read_text())
    network = privacy["parts"]["rows"]
    # The accountant counted both epochs' steps, the one before the kill included: epsilon kept
    # accumulating across the crash instead of starting again from zero.
    assert network["steps"] * network["sample_rate"] == pytest.approx(2.0)
    assert 0.5 * privacy["epsilon_target"] < privacy["epsilon_spent"] <= privacy["epsilon_target"] == 3.0

    manifest = json.loads((runs.root / "dp" / "manifest.json").read_text())
    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}), get_client(sync_client=True) as client:
        state = client.read_flow_run(manifest["run"]["id"]).state
    assert state.type.value == "FAILED" and state.name == "Failed"
    assert state.message == "Release gate failed: " + "; ".join(manifest["gate"]["release"]["reasons"])
    assert "quality score" in state.message
    check = verify_run_folder(runs.root / "dp")  # complete: metrics, report, model, manifest; no synthetic/
    assert check.ok, check.problems
    assert not (runs.root / "dp" / "synthetic").exists()


def _parts(folder: Path) -> dict[str, bytes]:
    parts = sorted((folder / "synthetic").glob("part-*.parquet"))
    assert [p.name for p in parts] == PARTS
    return {p.name: p.read_bytes() for p in parts}


def _only_complete_outputs(out: Path) -> None:
    """What a killed run leaves in its output folder: no manifest, no release, only whole files."""
    assert not (out / "manifest.json").exists() and not (out / "synthetic").exists()
    for path in out.rglob("*"):
        if path.is_dir() or any(part.startswith(".tmp-") for part in path.relative_to(out).parts):
            continue  # a write the kill interrupted: never under a final name, removed by the next run
        if path.suffix == ".parquet":
            assert pq.ParquetFile(path).metadata.num_rows > 0, path
        elif path.suffix == ".json" or path.name == LOCK:
            json.loads(path.read_text())
