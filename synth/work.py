"""The life of a work folder: private while it exists, gone when its run is done, ``synth clean`` for the rest.

A run's work folder (:mod:`synth.runs`) holds real data: the staged extract, the clean
dataset, GX results that quote values, training checkpoints. So:

* it is **owner-only**: folders ``0700``, files ``0600``, whatever the umask. The folder is
  made private when it is created (nothing inside is reachable by others from then on),
  and each stage that writes there makes what it wrote private too (:func:`make_private`);
* it is **removed when the run completes** (released or refused by the gate: nothing is
  left to resume), unless ``keep_work: true``; a run that stops on an error keeps it, so
  the rerun resumes from it;
* ``synth clean`` lists and removes work folders: all, those unused for N days, or those
  of one output (:func:`find_work_dirs`, :func:`remove_work_dir`).

Work folders are recognised by the token :func:`synth.runs.open_work_dir` writes; nothing
else under the work root is listed or removed, and links are never followed.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from synth.errors import ConfigError

RUN_RECORD = "run.json"  # what the folder is for: the output it serves (no real data)
TOKEN = ".token"
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600


def make_private(folder: str | Path) -> None:
    """Give ``folder`` and everything under it owner-only permissions (links are left alone)."""
    root = Path(folder)
    if not root.is_dir() or root.is_symlink():
        return
    os.chmod(root, PRIVATE_DIR)
    for parent, dirs, files in os.walk(root):
        for name in dirs:
            path = os.path.join(parent, name)
            if not os.path.islink(path):
                os.chmod(path, PRIVATE_DIR)
        for name in files:
            path = os.path.join(parent, name)
            if not os.path.islink(path):
                os.chmod(path, PRIVATE_FILE)


def make_private_dir(folder: Path) -> None:
    """Create ``folder`` (and missing parents) as owner-only, whatever the umask."""
    missing = [p for p in [folder, *folder.parents] if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    for created in missing:
        os.chmod(created, PRIVATE_DIR)
    os.chmod(folder, PRIVATE_DIR)


def check_outside(work_root: str | Path, output: str | Path) -> None:
    """The work root must not lie inside the output folder: outputs are shared and uploaded, real data not.

    Compared after resolving ``..`` and links, so ``out/run/../run/work`` is caught too.

    Raises:
        ConfigError: naming both folders.
    """
    work, out = Path(work_root).expanduser().resolve(), Path(output).expanduser().resolve()
    if work == out or out in work.parents:
        raise ConfigError(
            f"work_dir {work_root} is inside the output folder {output} ({work}): the output is shared and "
            "uploaded, the work folder holds real data; choose a work_dir outside it"
        )


def record_run(folder: str | Path, output: str) -> None:
    """Note which output the work folder serves, and when it was last used (for ``synth clean``)."""
    path = Path(folder) / RUN_RECORD
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(fd, "w") as out:
        json.dump({"output": str(output), "used": time.time()}, out)


@dataclass(frozen=True)
class WorkFolder:
    """A work folder found under the work root."""

    path: Path
    output: str | None
    used: float  # last use, seconds since the epoch
    bytes: int

    @property
    def age_days(self) -> float:
        return (time.time() - self.used) / 86_400


def find_work_dirs(root: str | Path) -> list[WorkFolder]:
    """The work folders directly under ``root`` (folders holding a work token), oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for entry in sorted(root.iterdir()):
        if entry.is_symlink() or not entry.is_dir() or not (entry / TOKEN).is_file():
            continue
        record = _record(entry)
        used = record.get("used") or (entry / TOKEN).stat().st_mtime
        found.append(WorkFolder(entry, record.get("output"), float(used), _size(entry)))
    return sorted(found, key=lambda w: w.used)


def select_work_dirs(found: list[WorkFolder], *, everything: bool = False, older_than_days: float | None = None,
                     output: str | None = None) -> list[WorkFolder]:
    """The folders a ``synth clean`` selection names (all, unused for N days, or serving one output)."""
    chosen = []
    for work in found:
        if everything:
            chosen.append(work)
        elif older_than_days is not None and work.age_days > older_than_days:
            chosen.append(work)
        elif output is not None and work.output is not None and _same_output(work.output, output):
            chosen.append(work)
    return chosen


def remove_work_dir(folder: str | Path) -> None:
    """Delete a work folder and everything in it (it must hold a work token: nothing else is removed)."""
    folder = Path(folder)
    if folder.is_symlink() or not (folder / TOKEN).is_file():
        raise ConfigError(f"{folder} is not a work folder (it holds no {TOKEN}); nothing was removed")
    shutil.rmtree(folder)


def _same_output(recorded: str, asked: str) -> bool:
    if "://" in recorded or "://" in asked:
        return recorded.rstrip("/") == asked.rstrip("/")
    return Path(recorded).expanduser().resolve() == Path(asked).expanduser().resolve()


def _record(folder: Path) -> dict:
    try:
        return json.loads((folder / RUN_RECORD).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _size(folder: Path) -> int:
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            info = os.lstat(os.path.join(parent, name))
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total
