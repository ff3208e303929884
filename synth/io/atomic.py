"""Atomic writes: a file is either absent or complete, never half-written.

Every output goes to a temporary file in the destination folder and is renamed over
the final name only once it is complete (``os.replace`` is atomic on one file system).
A crash or an exception leaves, at worst, a ``.tmp-*`` file that the next run removes.

A killed process loses nothing the kernel has accepted, but a machine that loses power
can: the rename may reach the disk before the file's bytes, leaving a complete-looking
name over an empty file. So the temporary file is flushed to the disk (``fsync``) before
the rename, and the folder after it, so that the new name itself survives.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from synth.errors import OutputError

TMP_PREFIX = ".tmp-"


_FULL = "free some space or choose another location, then run again"
_REFUSED = "choose another location, or make this one writable"
#: Errors of the storage itself, the same on every attempt: no space, no quota, read-only, no permission,
#: a path through a file. Raised as :class:`OutputError` naming the path (the user can act; a retry cannot).
_STORAGE_ERRNOS = {
    errno.ENOSPC: ("no space left on the device", _FULL),
    errno.EDQUOT: ("the disk quota is exhausted", _FULL),
    errno.EROFS: ("the file system is read-only", _REFUSED),
    errno.EACCES: ("permission denied", _REFUSED),
    errno.EPERM: ("operation not permitted", _REFUSED),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "choose another location"),
    errno.EEXIST: ("a part of the path is a file, not a folder", "choose another location"),
}
_ERRNO_IN_TEXT = re.compile(r"\[Errno (\d+)\]|\(os error (\d+)\)")


def write_refused(error: BaseException, path: str | Path) -> OutputError | None:
    """An :class:`OutputError` naming ``path`` if ``error`` is the storage refusing a write, else ``None``."""
    if isinstance(error, OutputError):
        return error
    code = getattr(error, "errno", None)
    if code is None:  # Arrow and Polars (Rust) give the code in their message only
        found = _ERRNO_IN_TEXT.search(str(error))
        code = int(found.group(1) or found.group(2)) if found else None
    if code not in _STORAGE_ERRNOS:
        return None
    reason, advice = _STORAGE_ERRNOS[code]
    return OutputError(f"cannot write {path}: {reason}; {advice}")


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it over ``final`` on success.

    Raises:
        OutputError: the storage refused the write (full, read-only, not permitted); the
            temporary file is removed and ``final`` is left as it was.
    """
    final = Path(final)
    tmp_path = None
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + final.name + ".", dir=final.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual mode
        fsync_path(tmp_path)
        os.replace(tmp_path, final)
        fsync_path(final.parent)
    except OSError as exc:
        raise write_refused(exc, final) or exc
    finally:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``final``; swap it in for ``final`` on success.

    An existing ``final`` is replaced only after the new folder is complete.

    Raises:
        OutputError: the storage refused the write; the temporary folder is removed.
    """
    final = Path(final)
    tmp_path = None
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + final.name + ".", dir=final.parent))
        yield tmp_path
        replace_dir(tmp_path, final)
    except OSError as exc:
        raise write_refused(exc, final) or exc
    finally:
        if tmp_path is not None:
            shutil.rmtree(tmp_path, ignore_errors=True)


def replace_dir(source: str | Path, destination: str | Path) -> Path:
    """Put the folder ``source`` in place of ``destination`` (same file system).

    Readers see the old folder or the new one, never a mix: the old one is renamed
    aside first, the new one renamed in, then the old one deleted.
    """
    source, destination = Path(source), Path(destination)
    if not source.is_dir():
        raise FileNotFoundError(f"no folder at {source}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    if destination.exists():
        old = destination.with_name(f"{TMP_PREFIX}{destination.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(destination, old)
        os.replace(source, destination)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(source, destination)
    fsync_path(destination.parent)
    return destination


def fsync_path(path: str | Path) -> None:
    """Flush a file's bytes, or a folder's entries (names created, renamed or removed), to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as error:
        # Some file systems (a few network and FUSE mounts) cannot sync a folder: nothing more can be done there.
        if not (Path(path).is_dir() and error.errno in (errno.EINVAL, errno.ENOTSUP, errno.EBADF)):
            raise
    finally:
        os.close(fd)


def _read_umask() -> int:
    # Read once, at import: os.umask can only be read by setting it, which is not thread-safe.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, payload: Any) -> Path:
    """Write ``payload`` as indented JSON (NaN is written as null: JSON has no NaN)."""
    text = json.dumps(_nan_to_none(payload), indent=2, sort_keys=False, default=str, allow_nan=False)
    return write_text_atomic(path, text + "\n")


def write_parquet_atomic(path: str | Path, table: pa.Table, **options: Any) -> Path:
    """Write one Parquet file atomically (zstd by default)."""
    options.setdefault("compression", "zstd")
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **options)
    return Path(path)


def remove_stale_temporaries(folder: str | Path) -> int:
    """Delete leftovers of interrupted atomic writes in ``folder``; returns how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for leftover in folder.glob(TMP_PREFIX + "*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
        removed += 1
    return removed


def plain_json(payload: Any) -> Any:
    """``payload`` as :func:`write_json_atomic` writes it and JSON reads it back (NaN and infinities: None)."""
    return json.loads(json.dumps(_nan_to_none(payload), default=str, allow_nan=False))


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and value != value:  # NaN
        return None
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return _nan_to_none(value.item())  # numpy scalars
    return value
