"""The run's last step: its work folder of real-data intermediates is deleted (or kept, private)."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from synth.work import make_private, remove_work_dir
from tasks.preprocess import RunFolders


@task(name="finish-work", cache_policy=NO_CACHE)
def finish_work(run: RunFolders, keep: bool) -> str | None:
    """Delete the work folder of a completed run, or with ``keep`` make it private and say where it is.

    Returns:
        The folder kept, or ``None`` when it was deleted.
    """
    logger = get_run_logger()
    if keep:
        make_private(run.work.path)
        logger.info(f"work folder kept (keep_work: true), owner-only: {run.work.path}; remove it with `synth clean`")
        return run.work.path
    remove_work_dir(run.work.path)
    logger.info("work folder of real-data intermediates deleted (keep_work: true keeps it)")
    return None
