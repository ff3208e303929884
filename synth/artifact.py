"""The model folder: plain files, never a pickle.

::

    model/
      model.json        which synthesizer, its constructor arguments
      model.pt          network weights only (``torch.load(weights_only=True)``)
      config.json       the PipelineConfig the model was trained with
      schema.json       column kinds and exact Arrow types
      transformer.json  fitted RDT state (JSON + .npz, rebuilt from an allow-list)
      transformer.npz
      segments.json
      identifiers.json  digit counts for fresh ids (under DP: the type's width, not the data's)
      privacy.json      every DP release with its mechanism and epsilon/delta, their sums, unit,
                        the DP unit count, the delta rule, what is and is not covered
      training.json     epochs, losses, device, rows/s (under DP: no losses, row count or timings)
      dp_domain.json    under DP: the released per-column summaries the transforms were fitted on
      state.npz         a baseline's learned arrays (synth/models/tabular.py); SMOTE's holds the
                        training rows themselves, and its model.json says so in privacy_note
      versions.json     library versions, checked on load

Under DP the folder holds nothing computed from real data that the accountant did not pay
for (``tests/test_privacy.py`` walks it file by file and key by key).

A model folder is written atomically: it appears complete or not at all.
"""

from __future__ import annotations

import json
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from synth.errors import ModelError

VERSIONS_JSON = "versions.json"
#: package -> how many leading version parts must match to load a model
COMPATIBLE_PARTS = {"synth-pipeline": 2, "torch": 1, "rdt": 1, "numpy": 1, "scikit-learn": 1}


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in [*COMPATIBLE_PARTS, "opacus", "pandas", "pyarrow"]:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def check_versions(folder: Path) -> None:
    """Refuse a model saved by incompatible library versions, saying which and how to fix it."""
    saved = read_json(folder / VERSIONS_JSON)
    current = library_versions()
    problems = []
    for package, parts in COMPATIBLE_PARTS.items():
        old, new = saved.get(package), current.get(package)
        if old is None or new is None or old == "not installed":
            continue
        if old.split(".")[:parts] != new.split(".")[:parts]:
            problems.append(f"{package} {old} (saved) vs {new} (installed)")
    if problems:
        raise ModelError(
            f"{folder} was saved with incompatible library versions: {'; '.join(problems)}. "
            "Install the saved versions, or retrain the model."
        )


def check_plain_files(folder: Path) -> None:
    """Refuse a model folder holding links: every file it loads must be its own, inside it.

    A link could make loading read any file the process can (``model.pt -> /elsewhere``).
    """
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            raise ModelError(
                f"{path} is a link (to {os.readlink(path)}); a model folder holds plain files only: copy the "
                "files themselves into it"
            )


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise ModelError(f"{path.parent}: missing {path.name}; is this a model folder?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: not valid JSON ({exc})") from None
