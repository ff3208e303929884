"""``manifest.json``: what a downstream ingestion job needs to know about a run's outputs.

Written last, atomically, beside the outputs: its presence means the outputs are complete
(a run withdraws the folder's old manifest before it changes any output). It lists every
output file with its size and SHA-256 (and rows, for Parquet parts), the schema of the
synthetic table, row counts, the model's fingerprint, the code and library versions, the
privacy budget spent, the validation gate's verdict and the run's id, and is sealed with
a checksum of its own content; ``synth verify`` (:mod:`synth.verify`) checks a folder
against it. It holds no real values: counts, names and hashes only.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from synth.artifact import library_versions
from synth.io.atomic import fsync_path, plain_json, write_json_atomic

MANIFEST = "manifest.json"
SEAL = "manifest_sha256"
FORMAT_VERSION = 1
_CODE_PACKAGES = ("synth", "tasks", "flows")
_SKIPPED = (".synth-run.lock", MANIFEST)


@functools.cache
def code_version(packages: tuple[str, ...] = _CODE_PACKAGES) -> str:
    """SHA-256 over the Python sources of ``packages``: changes with any code change."""
    digest = hashlib.sha256()
    for package in packages:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        for root in spec.submodule_search_locations:
            for path in sorted(Path(root).rglob("*.py")):
                digest.update(f"{package}/{path.relative_to(root).as_posix()}".encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def file_entries(folder: str | Path) -> list[dict[str, Any]]:
    """Every file under ``folder`` (relative path, bytes, SHA-256; rows for Parquet), sorted."""
    folder = Path(folder)
    entries = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if relative in _SKIPPED or any(part.startswith(".tmp-") for part in path.parts):
            continue
        entry: dict[str, Any] = {"path": relative, "bytes": path.stat().st_size, "sha256": sha256_of(path)}
        if path.suffix == ".parquet":
            entry["rows"] = pq.ParquetFile(path).metadata.num_rows
        entries.append(entry)
    return entries


def build_manifest(
    output_dir: str | Path,
    *,
    run: dict[str, Any],
    source: dict[str, Any],
    schema: dict[str, Any],
    rows: dict[str, int],
    model: dict[str, Any],
    privacy: dict[str, Any],
    gate: dict[str, Any],
    sinks: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The manifest of the outputs under ``output_dir`` (files are hashed here)."""
    return {
        "format": FORMAT_VERSION,
        "written": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "run": run,
        "source": source,
        "schema": schema,
        "rows": rows,
        "model": model,
        "privacy": privacy,
        "gate": gate,
        "sinks": sinks or [],
        "versions": {"code": code_version(), **library_versions()},
        "files": file_entries(output_dir),
    }


def write_manifest(output_dir: str | Path, manifest: dict[str, Any]) -> Path:
    """Write ``manifest.json`` sealed with its own checksum (``manifest_sha256``: see :func:`manifest_digest`)."""
    sealed = plain_json({k: v for k, v in manifest.items() if k != SEAL})
    sealed[SEAL] = manifest_digest(sealed)
    return write_json_atomic(Path(output_dir) / MANIFEST, sealed)


def manifest_digest(manifest: dict[str, Any]) -> str:
    """SHA-256 of the manifest's canonical JSON (sorted keys, no spaces), its own seal left out.

    A manifest edited after it was written (a file's checksum replaced to hide a changed
    file, say) no longer matches its seal; ``synth verify`` says so.
    """
    body = {k: v for k, v in manifest.items() if k != SEAL}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def withdraw_manifest(output_dir: str | Path) -> bool:
    """Delete ``manifest.json`` (and make the deletion durable) before the outputs change; whether there was one."""
    path = Path(output_dir) / MANIFEST
    if not path.exists():
        return False
    path.unlink()
    fsync_path(path.parent)
    return True


def read_manifest(output_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(output_dir) / MANIFEST).read_text(encoding="utf-8"))


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
