"""``synth verify DIR``: does a run folder hold exactly what its manifest says it holds?

An ingestion job, an auditor or an operator after a crash asks one question of an output
folder: is it a complete run, unchanged since it was written? The checks:

* ``manifest.json`` exists (a run writes it last), is JSON of a format this code reads,
  and matches its seal (``manifest_sha256``), so it was not edited after it was written;
* every file it lists is there, with the listed size and SHA-256;
* nothing else is there: no unlisted file (in ``synthetic/`` above all, where a reader
  takes every part it finds for released data), no leftover of an interrupted write, no
  run holding the folder's lock;
* ``synthetic/`` exists only if the release gate let the data out, and its parts add up
  to the synthetic rows the manifest states.

Each problem is one line naming the file. Reading only, never writing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from synth.io.atomic import TMP_PREFIX
from synth.manifest import FORMAT_VERSION, MANIFEST, SEAL, manifest_digest, sha256_of
from synth.runs import LOCK

RELEASE = "synthetic"


@dataclass
class Verification:
    """The outcome: ``problems`` is empty when the folder is exactly what its manifest lists."""

    folder: Path
    files: int = 0
    problems: list[str] = field(default_factory=list)
    run: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        run = self.run.get("name") or self.run.get("id") or "unknown run"
        if self.ok:
            return f"OK: {self.folder} holds the {self.files} files its manifest lists, unchanged ({run})"
        return f"FAILED: {self.folder}: {len(self.problems)} problem(s)"


def verify_run_folder(folder: str | Path) -> Verification:
    """Check ``folder`` against its ``manifest.json`` (see the module docstring)."""
    folder = Path(folder)
    result = Verification(folder)
    if not folder.is_dir():
        result.problems.append(f"no folder at {folder}")
        return result
    lock = folder / LOCK
    if lock.exists():
        result.problems.append(f"{LOCK}: {_lock_holder(lock)} holds the folder's lock: a run is writing here, or it "
                               "crashed (the next run on this folder takes a dead run's lock over)")
    manifest = _read_manifest(folder, result.problems)
    if manifest is None:
        return result
    result.run = manifest.get("run") or {}
    listed = _check_listed(folder, manifest.get("files"), result)
    _check_unlisted(folder, listed, result.problems)
    _check_release(folder, manifest, listed, result.problems)
    return result


def _read_manifest(folder: Path, problems: list[str]) -> dict | None:
    path = folder / MANIFEST
    if not path.is_file():
        problems.append(f"{MANIFEST}: missing: the run did not finish (a run writes it last), or this is not a run "
                        "folder")
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        problems.append(f"{MANIFEST}: not valid JSON ({error}): damaged or not written by synth")
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        problems.append(f"{MANIFEST}: no list of files: not a synth run manifest")
        return None
    if manifest.get("format") != FORMAT_VERSION:
        problems.append(f"{MANIFEST}: format {manifest.get('format')!r}; this version of synth reads format "
                        f"{FORMAT_VERSION}")
    if SEAL not in manifest:
        problems.append(f"{MANIFEST}: no {SEAL}: it cannot show it is unedited (written by an older synth?)")
    elif manifest[SEAL] != manifest_digest(manifest):
        problems.append(f"{MANIFEST}: edited after it was written: its content no longer matches its {SEAL}")
    return manifest


def _check_listed(folder: Path, entries: list, result: Verification) -> set[str]:
    listed = set()
    for entry in entries:
        path = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(path, str) or not _inside(path):
            result.problems.append(f"{MANIFEST}: a file entry with a bad path ({path!r}): paths are relative and stay "
                                   "inside the folder")
            continue
        listed.add(path)
        file = folder / path
        if not file.is_file():
            result.problems.append(f"{path}: missing (listed in the manifest)")
            continue
        result.files += 1
        size = file.stat().st_size
        if size != entry.get("bytes"):
            result.problems.append(f"{path}: {size:,} bytes, the manifest lists {entry.get('bytes')}")
        elif sha256_of(file) != entry.get("sha256"):
            result.problems.append(f"{path}: content changed (SHA-256 differs from the manifest's)")
    return listed


def _check_unlisted(folder: Path, listed: set[str], problems: list[str]) -> None:
    for file in sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink()):
        relative = file.relative_to(folder).as_posix()
        if relative in listed or relative in (MANIFEST, LOCK):
            continue
        if any(part.startswith(TMP_PREFIX) for part in file.relative_to(folder).parts):
            problems.append(f"{relative}: left by an interrupted write (the next run on this folder removes it)")
        elif relative.startswith(RELEASE + "/"):
            problems.append(f"{relative}: not in the manifest, yet in {RELEASE}/, where readers take every part for "
                            "released data")
        else:
            problems.append(f"{relative}: not in the manifest")


def _check_release(folder: Path, manifest: dict, listed: set[str], problems: list[str]) -> None:
    gate = (manifest.get("gate") or {}).get("release") or {}
    released = gate.get("verdict") == "pass" or gate.get("enforced") is False
    parts = sorted(p for p in listed if p.startswith(RELEASE + "/") and p.endswith(".parquet"))
    if gate and not released and (folder / RELEASE).exists():
        problems.append(f"{RELEASE}/: present, but the manifest's release gate refused the data ("
                        f"{gate.get('summary') or gate.get('verdict')})")
    stated = (manifest.get("rows") or {}).get("synthetic")
    if parts and stated is not None:
        rows = sum(e.get("rows", 0) for e in manifest["files"] if isinstance(e, dict) and e.get("path") in parts)
        if rows != stated:
            problems.append(f"{RELEASE}/: its parts hold {rows:,} rows, the manifest states {stated:,} synthetic rows")


def _inside(path: str) -> bool:
    pure = PurePosixPath(path)
    return bool(path) and not pure.is_absolute() and ".." not in pure.parts and "\\" not in path


def _lock_holder(lock: Path) -> str:
    try:
        holder = json.loads(lock.read_text())
    except (OSError, json.JSONDecodeError):
        return "an unreadable lock"
    return f"{holder.get('owner') or 'a run'} (process {holder.get('pid')} on {holder.get('host')})"
