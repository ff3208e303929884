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
from synth.io.faults import storage_error

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
        SourceError: nothing matches, the folder holds no data files, or the store refuses access.
        TransientError: the store did not answer (connection reset, timeout, throttling): retried.
    """
    fs, path = filesystem(source)
    protocol = _protocol(fs)
    try:
        if any(ch in path for ch in "*?["):
            # One listing with each entry's type: fs.isfile() per path would turn a failed request
            # into "not a file" and silently leave the file out of the extract.
            found = [p for p, info in fs.glob(path, detail=True).items() if info.get("type") == "file"]
            if not found:
                raise SourceError(f"no files match {source}")
        elif (kind := _kind(fs, path)) is None:
            raise SourceError(f"source not found: {source}")
        elif kind == "directory":
            # Not .txt: a README beside the data is not part of the extract (a .txt file given by name is).
            found = [p for p in fs.find(path) if p.lower().endswith(PARQUET_SUFFIXES + CSV_SUFFIXES[:-1])]
            found = [p for p in found if not _hidden(p, path)]
            if not found:
                raise SourceError(f"{source} is a folder with no .parquet or .csv files in it")
        else:
            found = [path]
        files = [_describe(fs, protocol, p) for p in sorted(found)]
    except OSError as exc:
        raise storage_error(exc, f"cannot list {source}") from None
    return files


def _kind(fs: fsspec.AbstractFileSystem, path: str) -> str | None:
    """``file``, ``directory`` or None when nothing is there; any other failure is raised
    (``fs.exists()`` answers False to a timeout, which would read as a missing extract)."""
    try:
        return fs.info(path)["type"]
    except FileNotFoundError:
        return None


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


def upload_folder(local: str | Path, uri: str, replace: tuple[str, ...] = ()) -> list[str]:
    """Copy a local folder's files to ``uri`` (a remote folder); returns the remote paths written.

    Hidden files (locks, temporaries) stay behind. A ``manifest.json`` an earlier upload left
    is deleted first and the new one copied last, so a reader that waits for it never finds
    two runs' files mixed. Under the subfolders named in ``replace`` (e.g. ``synthetic``),
    remote files this upload does not bring are deleted before anything is copied: a release
    withdrawn locally (a failed gate) is withdrawn remotely too, never left beside new metrics.

    Raises:
        SourceError: the store refused (no permission, no such bucket).
        TransientError: the store did not answer (connection reset, timeout, throttling): retried.
    """
    fs, root = filesystem(uri)
    root = root.rstrip("/")
    local = Path(local)
    files = [p for p in local.rglob("*") if p.is_file() and not p.relative_to(local).as_posix().startswith(".")]
    keep = {p.relative_to(local).as_posix() for p in files}
    written = []
    try:
        try:
            fs.rm(f"{root}/manifest.json")
        except FileNotFoundError:
            pass
        for folder in replace:
            stale = [p for p in fs.find(f"{root}/{folder}") if p.removeprefix(f"{root}/") not in keep]
            if stale:
                fs.rm(stale)
        for path in sorted(files, key=lambda p: (p.name == "manifest.json", p.as_posix())):
            target = f"{root}/{path.relative_to(local).as_posix()}"
            fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            fs.put_file(str(path), target)
            written.append(target)
    except OSError as exc:
        raise storage_error(exc, f"cannot upload {local} to {uri}") from None
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
