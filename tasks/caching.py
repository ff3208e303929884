"""Cache policies: a re-triggered run repeats only what failed or changed.

A cached task's key is its own source, the run's inputs that matter and the library's
code version. The inputs that matter are the data's fingerprint (file names, sizes and
modification times, or a SQL query and its row count), the settings the task reads (not
where the work runs: workers, Dask address, device; the expectation suite by its content,
so a suite edited in place is re-checked), and the token of the work folder the result
points into: a deleted and recreated work folder never serves a stale result. Results
are persisted (Prefect's result storage, ``PREFECT_HOME/storage`` unless configured);
they hold paths, counts and the schema, never real values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect.cache_policies import TASK_SOURCE, CachePolicy
from prefect.context import TaskRunContext
from prefect.utilities.hashing import hash_objects

from synth.manifest import code_version
from synth.runs import preprocess_settings


@dataclass
class CodeVersion(CachePolicy):
    """The hash of the ``synth``, ``tasks`` and ``flows`` sources: new code, new results."""

    def compute_key(
        self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any
    ) -> str:
        return code_version()


@dataclass
class RunInputs(CachePolicy):
    """The source, its data fingerprint, the settings preprocessing reads and the work folder's token."""

    def compute_key(
        self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any
    ) -> str | None:
        return hash_objects(
            inputs["source"], inputs["fingerprint"], preprocess_settings(inputs["config"]), inputs["work"].token
        )


DATA_CONFIG_CODE = TASK_SOURCE + RunInputs() + CodeVersion()
