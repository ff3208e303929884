"""An output location checked before a run starts: a run that cannot write its results fails at once.

Without this check a run finds out at its first write, after preprocessing, with an
error about a lock file or a temporary part rather than about the folder the user named.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from synth.errors import OutputError
from synth.io.atomic import TMP_PREFIX, write_refused
from synth.io.uri import is_remote, local_path


def check_output(output: str | Path) -> None:
    """Fail, naming the path, when a local output folder cannot be created or written to.

    Remote outputs (``s3://``...) are checked by their first upload.

    Raises:
        OutputError: ``output`` is a file, lies under a file, or its nearest existing
            folder refuses a write (read-only, no permission, full).
    """
    if is_remote(output):
        return
    path = local_path(output)
    if path.exists() and not path.is_dir():
        raise OutputError(f"output {path} is a file, not a folder; choose a folder")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"cannot create the output folder {path}: {existing} is a file, not a folder")
    # A real write, not access(2): root passes access() on folders it cannot write (/proc, a
    # read-only bind mount); the probe folder is removed at once.
    try:
        os.rmdir(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}write-probe-", dir=existing))
    except OSError as exc:
        raise write_refused(exc, path) or OutputError(
            f"cannot write to {existing} ({exc.strerror or exc}); choose another output folder"
        ) from None
