"""Sources and sinks named by URI, through fsspec: local paths, ``file://``, ``s3://``, ``abfs://``...

A source is a file, a folder or a glob; on a remote store the same three forms work
(``s3://bucket/extract/2025-01/*.parquet``). Cloud protocols need their fsspec package
(``pip install synth-pipeline[s3]`` or ``[azure]``); credentials come from the usual
environment variables or config files of those packages, never from the pipeline config.

A ``sql:`` source is not a URI: see :mod:`synth.io.sql`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import fsspec
from fsspec.core import url_to_fs

from synth.errors import SourceError

SQL_PREFIX = "sql:"
CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".txt")  # .txt last: only when named (see list_files)
PARQUET_SUFFIXES = (".parquet", ".pq")
_EXTRAS = {"s3": "s3", "s3a": "s3", "abfs": "azure", "abfss": "azure", "az": "azure"}


def is_sql(source: str) -> bool:
    """Whether ``source`` names a SQL query or table (``sql:SELECT ...`` / ``sql:schema.table``)."""
    return str(source).startswith(SQL_PREFIX)


def is_remote(uri: str | Path) -> bool:
    """Whether ``uri`` names something off the local file system."""
    text = str(uri)
    return "://" in text and not text.startswith("file://")


def local_path(uri: str | Path) -> Path:
    """The local path of a plain path or a ``file://`` URI."""
    text = str(uri)
    return Path(text[len("file://") :]) if text.startswith("file://") else Path(text)


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """(file system, path within it) for ``uri``, with a clear error when its package is missing."""
    try:
        return url_to_fs(str(uri))
    except ImportError as exc:
        protocol = str(uri).split("://", 1)[0]
        extra = _EXTRAS.get(protocol)
        hint = f"pip install 'synth-pipeline[{extra}]'" if extra else "install its fsspec implementation"
        raise SourceError(f"{uri}: the {protocol}:// protocol needs an extra package ({hint}): {exc}") from None
    except ValueError as exc:
        raise SourceError(f"{uri}: not a usable URI ({exc})") from None


@dataclass(frozen=True)
class DataFile:
    """One data file of a source: its URI (or local path), size and a change marker."""

    uri: str
    size: int
    version: str  # mtime, ETag or last-modified: whatever the store offers

    @property
    def name(self) -> str:
        return self.uri.rstrip("/").rsplit("/", 1)[-1]


def list_files(source: str) -> list[DataFile]:
    """Expand a file, folder or glob (local or remote) into its data files, sorted by URI.

    Raises:
        SourceError: nothing matches, the folder holds no data files, or the store is unreachable.
    """
    fs, path = filesystem(source)
    protocol = _protocol(fs)
    try:
        if any(ch in path for ch in "*?["):
            found = [p for p in fs.glob(path) if fs.isfile(p)]
            if not found:
                raise SourceError(f"no files match {source}")
        elif not fs.exists(path):
            raise SourceError(f"source not found: {source}")
        elif fs.isdir(path):
            # Not .txt: a README beside the data is not part of the extract (a .txt file given by name is).
            found = [p for p in fs.find(path) if p.lower().endswith(PARQUET_SUFFIXES + CSV_SUFFIXES[:-1])]
            found = [p for p in found if not _hidden(p, path)]
            if not found:
                raise SourceError(f"{source} is a folder with no .parquet or .csv files in it")
        else:
            found = [path]
        files = [_describe(fs, protocol, p) for p in sorted(found)]
    except OSError as exc:
        raise SourceError(f"cannot list {source}: {exc}") from None
    return files


def check_source(source: str, declared_format: str = "auto") -> None:
    """Fail fast, with a clear message, on a file source that does not exist or whose format is unknown
    (SQL is checked later)."""
    if not is_sql(source):
        file_format(list_files(source), declared_format)


def files_fingerprint(files: list[DataFile]) -> str:
    """SHA-256 over the files' names, sizes and versions: changes when any file changes."""
    payload = [[f.uri, f.size, f.version] for f in files]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


def file_format(files: list[DataFile], declared: str = "auto") -> str:
    """``csv`` or ``parquet``: the declared format, or the one every file name shows."""
    return format_from_names([f.name for f in files], files[0].uri, declared)


def format_from_names(names: list[str], first: str, declared: str = "auto") -> str:
    """``csv`` or ``parquet`` from file names (``first``: the location an error names)."""
    if declared != "auto":
        return declared
    lowered = [n.lower() for n in names]
    if all(n.endswith(PARQUET_SUFFIXES) for n in lowered):
        return "parquet"
    if all(n.endswith(CSV_SUFFIXES) for n in lowered):
        return "csv"
    raise SourceError(
        f"cannot tell the format of {first} from its name; use .csv or .parquet, or set source.format in the config"
    )


def upload_folder(local: str | Path, uri: str) -> list[str]:
    """Copy a local folder's files to ``uri`` (a remote folder); returns the remote paths written.

    Hidden files (locks, temporaries) stay behind. ``manifest.json`` is copied last, so a
    reader that waits for it finds every other file complete.
    """
    fs, root = filesystem(uri)
    local = Path(local)
    files = [p for p in local.rglob("*") if p.is_file() and not p.relative_to(local).as_posix().startswith(".")]
    written = []
    for path in sorted(files, key=lambda p: (p.name == "manifest.json", p.as_posix())):
        target = f"{root.rstrip('/')}/{path.relative_to(local).as_posix()}"
        fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        fs.put_file(str(path), target)
        written.append(target)
    return written


def _protocol(fs: fsspec.AbstractFileSystem) -> str:
    protocol = fs.protocol
    return protocol[0] if isinstance(protocol, (tuple, list)) else protocol


def _describe(fs: fsspec.AbstractFileSystem, protocol: str, path: str) -> DataFile:
    info = fs.info(path)
    markers = (info.get(k) for k in ("ETag", "etag", "mtime", "LastModified", "last_modified", "created"))
    version = next((str(m) for m in markers if m is not None), "")
    uri = path if protocol in ("file", "local") else f"{protocol}://{path.removeprefix(protocol + '://')}"
    return DataFile(uri=uri, size=int(info.get("size") or 0), version=version)


def _hidden(path: str, root: str) -> bool:
    relative = path[len(root.rstrip("/")) :].strip("/")
    return any(part.startswith((".", "_")) for part in relative.split("/"))
