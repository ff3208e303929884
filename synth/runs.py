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
  into the first run's files. It is a lease the holder renews: a lock whose process is
  dead (checked on the same machine) or whose lease expired (a crashed container on
  another host) is taken over, a live one never is.
* A **training record** in the work folder says which model a finished training wrote,
  so a re-triggered run reuses it instead of training (and spending ε) again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil

from synth.config import PipelineConfig
from synth.errors import SynthError
from synth.io.atomic import TMP_PREFIX, write_json_atomic
from synth.work import TOKEN, make_private_dir, record_run

LOCK = ".synth-run.lock"
LEASE_SECONDS = 300.0
#: A takeover turn lasts milliseconds; one older than this was left by a newcomer that died in it.
TAKEOVER_SECONDS = 30.0
#: Locks written before leases existed name no lease: from another machine, they are
#: taken to last as long as a run may (the flows' default timeout).
LEGACY_LEASE_SECONDS = 24 * 3600.0
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

    The lock is a lease. Its file is created whole or not at all (written aside, then
    hard-linked into place: ``link`` fails when the name exists, on local and NFS file
    systems alike), and while the run lives a background thread touches it every
    ``lease_seconds / 10``. Another run takes the lock over only when its holder is
    provably gone:

    * **dead**: on the same machine (same kernel boot and process namespace) no process
      has the holder's pid and start time (a container restarted with the same host name
      and pid numbers does not fool it);
    * **expired**: the lock was not touched for ``lease_seconds`` (a crashed container
      on another host, whose processes cannot be looked up from here). The hosts' clocks
      must agree to well within the lease.

    A live holder renews its lease, so it is never taken over unless it stalls for longer
    than the lease; then it has lost the lock, and it fails when it leaves the block rather
    than pass as the folder's only writer. Taking over is safe against several newcomers at
    once: they take turns to remove it (an exclusive turn file), each checking that the lock
    is still the file it judged stale, and ``link`` lets exactly one of them create the new one.

    On acquiring, leftovers of writes a crash interrupted (``.tmp-*``) are removed: the
    holder is the folder's only writer.

    Args:
        output: the local output folder.
        owner: who holds it (e.g. the flow run's name and id), shown to the run that is refused.
        lease_seconds: how long an untouched lock stays valid.
    """

    def __init__(self, output: str | Path, owner: str = "", lease_seconds: float = LEASE_SECONDS):
        self.path = Path(output) / LOCK
        self.owner = owner
        self.lease = lease_seconds
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def __enter__(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = psutil.Process()
        record = {
            "owner": self.owner, "host": socket.gethostname(), "machine": _machine(), "pid": me.pid,
            "started": me.create_time(), "since": time.time(), "lease_seconds": self.lease, "token": self.token,
        }
        for _ in range(5):
            if self._create(record):
                self._heartbeat = threading.Thread(target=self._renew, name="synth-output-lock", daemon=True)
                self._heartbeat.start()
                self._clear_debris()
                return self
            try:
                judged = os.stat(self.path)
            except FileNotFoundError:
                continue  # released meanwhile
            holder = self._holder()
            if not _stale(holder, judged.st_mtime, time.time()):
                raise RunConflictError(self._busy(holder, judged.st_mtime)) from None
            self._take_over(judged)
        raise RunConflictError(f"cannot take the lock {self.path}; another run took it first")

    def __exit__(self, kind, error, tb) -> bool:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        holder = self._holder_token()
        if holder == self.token:
            self.path.unlink(missing_ok=True)
        elif holder is not None and kind is None:
            raise RunConflictError(
                f"this run lost its lock on {self.path.parent} while writing there: it did not renew its lease for "
                f"{self.lease:g}s (was the process paused?) and another run took the folder over; rerun it"
            )
        return False

    def _create(self, record: dict) -> bool:
        """Create the lock file whole, unless it exists."""
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + LOCK + ".", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(record, out)
            os.chmod(tmp, 0o644)
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _clear_debris(self) -> None:
        """Remove what interrupted writes left (``.tmp-*``), not other newcomers' lock files in flight."""
        for leftover in self.path.parent.glob(TMP_PREFIX + "*"):
            with contextlib.suppress(FileNotFoundError):
                if leftover.name.startswith(TMP_PREFIX + LOCK) and time.time() - leftover.lstat().st_mtime < self.lease:
                    continue
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink()

    def _take_over(self, judged: os.stat_result) -> None:
        """Remove the lock judged stale, if it is still that file; one newcomer at a time.

        Newcomers that judged the same lock stale take turns (an exclusive ``.takeover``
        file): the one whose turn it is checks that the lock is still the file it judged
        (same inode, untouched since) and removes it; then every newcomer tries to create
        the lock again, and ``link`` lets exactly one in. A newcomer that finds another's
        turn in progress waits a moment and judges again.
        """
        turn = self.path.with_name(LOCK + ".takeover")
        try:
            os.close(os.open(turn, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            with contextlib.suppress(FileNotFoundError):
                if time.time() - os.stat(turn).st_mtime > TAKEOVER_SECONDS:  # its taker died mid-turn
                    os.unlink(turn)
            time.sleep(0.05)
            return
        try:
            current = os.stat(self.path)
            if (current.st_ino, current.st_dev, current.st_mtime_ns) == (judged.st_ino, judged.st_dev,
                                                                          judged.st_mtime_ns):
                os.unlink(self.path)
        except FileNotFoundError:
            pass  # its holder released it meanwhile
        finally:
            os.unlink(turn)

    def _renew(self) -> None:
        while not self._stop.wait(self.lease / 10):
            if self._holder_token() not in (None, self.token):
                return  # taken over: the lease is someone else's now
            with contextlib.suppress(FileNotFoundError):
                os.utime(self.path)

    def _holder_token(self) -> str | None:
        """The token in the lock file; None when there is none (or, for a moment during a takeover, no file)."""
        return (self._holder() or {}).get("token")

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def _busy(self, holder: dict | None, touched: float) -> str:
        holder = holder or {}
        since = _clock(holder.get("since", touched))
        expires = _clock(touched + float(holder.get("lease_seconds", LEGACY_LEASE_SECONDS)))
        return (
            f"{self.path.parent} is being written by another run ({holder.get('owner') or 'unknown'}, "
            f"process {holder.get('pid')} on {holder.get('host')}, since {since}; its lease runs to {expires} "
            f"unless renewed); wait for it to finish or choose another output folder. A lock whose run died is "
            f"taken over once that is certain: at once on the same machine, when its lease expires from elsewhere."
        )


def _stale(holder: dict | None, touched: float, now: float) -> bool:
    """Whether the lock's holder is provably gone: dead on this machine, or its lease expired."""
    if holder is None:  # unreadable: only its age can tell
        return now - touched > LEASE_SECONDS
    if holder.get("machine") == _machine() or ("machine" not in holder and holder.get("host") == socket.gethostname()):
        return not _running(holder)
    return now - touched > float(holder.get("lease_seconds", LEGACY_LEASE_SECONDS))


def _running(holder: dict) -> bool:
    try:
        process = psutil.Process(int(holder["pid"]))
        started = process.create_time()
    except psutil.NoSuchProcess:
        return False
    except (psutil.AccessDenied, KeyError, ValueError, TypeError):
        return True  # cannot tell: assume alive
    # The same pid with another start time is a new process that reuses the number.
    return "started" not in holder or abs(started - float(holder["started"])) < 1.0


def _machine() -> str:
    """Processes with the same value see the same pids: one kernel boot, one pid namespace."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return socket.gethostname()


def _clock(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


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
