"""Errors the user caused are never retried; faults that may pass are. Both are logged as one line.

A :class:`~synth.errors.SynthError` (a bad config, a missing file, data that does not fit
the schema) fails the same way on every attempt, so retrying it only delays the message;
and its traceback says nothing the message does not. A :class:`~synth.errors.TransientError`
(a reset connection, a timeout, a throttled bucket, a dropped database connection) is what
retries are for: it is retried with backoff, and its message says which file or query and
which fault. Other exceptions (bugs, faults not recognised) are retried too and keep their
traceback.
"""

from __future__ import annotations

import logging

from synth.errors import SynthError, TransientError


def retry_unless_user_error(task, task_run, state) -> bool:
    """Prefect ``retry_condition_fn``: retry transient failures, never a :class:`SynthError`."""
    try:
        state.result()
    except SynthError:
        return False
    except BaseException:
        return True
    return True


class _UserErrorsWithoutTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], (SynthError, TransientError)):
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_user_error_tracebacks() -> None:
    """Drop the traceback from Prefect's task and flow run logs when a user error or a known fault ends a run."""
    for name in ("prefect.task_runs", "prefect.flow_runs"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _UserErrorsWithoutTraceback) for f in logger.filters):
            logger.addFilter(_UserErrorsWithoutTraceback())
