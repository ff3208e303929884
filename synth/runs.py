"""Where a run keeps its real-data intermediates, and how runs keep out of each other's way.

* The **work folder** holds everything derived from real data that must not be shared:
  staged raw parts, the clean dataset, statistics, GX results, training checkpoints.
  It is owner-only and removed when its run completes (:mod:`synth.work`).
  It lives under ``${XDG_CACHE_HOME:-~/.cache}/synth-pipeline/work/<run key>`` (or under a
  ``work_dir`` the caller names), never inside the output folder, which is shared. The
  run key is a hash of the data's fingerprint, the settings preprocessing reads and the
  output, so a rerun of the same work finds its intermediates and other work never does.
  Each work folder holds a random token, created with it: results cached by Prefect name
  the token, so a deleted and recreated folder is never mistaken for the old one.
* An **output lock** (``.synth-run.lock`` in the output folder, created atomically) makes
  a second run on the same output fail at once with a clear message instead of writing
  into the first run's files. A lock left by a process that no longer exists on this
  machine is taken over.
* A **training record** in the work folder says which model a finished training wrote,
  so a re-triggered run reuses it instead of training (and spending ε) again.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from synth.config import PipelineConfig
from synth.errors import SynthError
from synth.io.atomic import write_json_atomic
from synth.work import TOKEN, make_private_dir, record_run

LOCK = ".synth-run.lock"
TRAINING_RECORD = "training-record.json"


class RunConflictError(SynthError):
    """Another run is writing to the same output folder."""


def default_work_root() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "synth-pipeline" / "work"


def preprocess_settings(config: PipelineConfig) -> str:
    """The settings preprocessing reads, as canonical JSON (not where it runs, nor later steps').

    The expectation suite is named by its content's SHA-256, not its path: a suite edited in
    place is a new setting (its verdict cannot come from the cache), a moved one is not.
    """
    data = config.model_dump(mode="json")
    keep = {k: data[k] for k in ("seed", "source", "entity_key", "columns", "drop", "transforms", "validation")}
    keep["validation"]["suite"] = _content_digest(config.validation.suite)
    keep["partition_rows"] = data["preprocess"]["partition_rows"]
    keep["holdout_fraction"] = data["evaluation"]["holdout_fraction"]
    return json.dumps(keep, sort_keys=True)


def _content_digest(path: str | None) -> str | None:
    """``sha256:<hex>`` of the file at ``path``; the path itself when it cannot be read (loading it will say why)."""
    if path is None:
        return None
    try:
        with open(path, "rb") as file:
            return "sha256:" + hashlib.file_digest(file, "sha256").hexdigest()
    except OSError:
        return path


def training_settings(config: PipelineConfig) -> str:
    """The settings a trained model depends on, as canonical JSON (not the device it ran on)."""
    data = config.model_dump(mode="json")
    # entity (the DP contribution bound) and constraints shape the model too: a change retrains.
    keep = {k: data[k] for k in ("seed", "transforms", "model", "privacy", "entity", "constraints")}
    keep["model"].pop("device", None)
    return json.dumps(keep, sort_keys=True)


def run_key(fingerprint: str, config: PipelineConfig, output: str) -> str:
    """A short hash naming the work folder of (data, preprocessing settings, output)."""
    payload = json.dumps([fingerprint, preprocess_settings(config), str(output)])
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class WorkDir:
    """A run's work folder and the token that identifies this incarnation of it."""

    path: str
    token: str

    @property
    def key(self) -> str:
        """The run key naming the folder (see :func:`run_key`): the same for every rerun of the same work."""
        return Path(self.path).name

    def sub(self, name: str) -> Path:
        return Path(self.path) / name


def open_work_dir(key: str, root: str | Path | None = None, output: str | None = None) -> WorkDir:
    """Create (or find) the work folder of ``key`` under ``root`` (default: the user cache).

    The folder is owner-only whatever the umask (real data; see :mod:`synth.work`), and
    notes the ``output`` it serves, for ``synth clean``.
    """
    folder = Path(root) if root else default_work_root()
    folder = folder / key
    make_private_dir(folder)
    if output is not None:
        record_run(folder, output)
    token_path = folder / TOKEN
    try:
        fd = os.open(token_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(uuid.uuid4().hex)
    except FileExistsError:
        pass
    return WorkDir(path=str(folder), token=token_path.read_text().strip())


class OutputLock:
    """Hold ``<output>/.synth-run.lock`` while a run writes there; refuse a second run.

    Args:
        output: the local output folder.
        owner: who holds it (e.g. the flow run id), shown to the run that is refused.
    """

    def __init__(self, output: str | Path, owner: str = ""):
        self.path = Path(output) / LOCK
        self.owner = owner

    def __enter__(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "owner": self.owner, "since": time.time()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is not None and not self._stale(holder):
                    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("since", 0)))
                    raise RunConflictError(
                        f"{self.path.parent} is being written by another run ({holder.get('owner') or 'unknown'}, "
                        f"process {holder.get('pid')} on {holder.get('host')}, since {since}); wait for it to "
                        f"finish or choose another output folder. If no run is active, delete {self.path}."
                    ) from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as out:
                json.dump(record, out)
            return self
        raise RunConflictError(f"cannot take the lock {self.path}; another run took it first")

    def __exit__(self, *exc) -> bool:
        self.path.unlink(missing_ok=True)
        return False

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    @staticmethod
    def _stale(holder: dict) -> bool:
        if holder.get("host") != socket.gethostname():
            return False  # another machine's run: it cannot be checked from here
        try:
            os.kill(int(holder["pid"]), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, KeyError, ValueError, TypeError):
            return False
        return False


def training_key(clean_version: str, config: PipelineConfig, code: str) -> str:
    """What a trained model depends on: the clean data, the config and the code."""
    return hashlib.sha256(json.dumps([clean_version, training_settings(config), code]).encode()).hexdigest()[:20]


def finished_training(work: WorkDir, key: str, model_dir: str | Path, model_fingerprint: str | None) -> bool:
    """Whether ``model_dir`` holds the model a finished training of ``key`` wrote."""
    path = work.sub(TRAINING_RECORD)
    if not path.is_file() or model_fingerprint is None:
        return False
    record = json.loads(path.read_text())
    return (
        record.get("key") == key
        and record.get("model") == model_fingerprint
        and record.get("model_dir") == str(model_dir)
    )


def record_training(work: WorkDir, key: str, model_dir: str | Path, model_fingerprint: str) -> None:
    write_json_atomic(work.sub(TRAINING_RECORD), {"key": key, "model_dir": str(model_dir), "model": model_fingerprint})
