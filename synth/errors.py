"""One family of exceptions that speak to the user, and the transient faults that are retried.

Every error a user can cause (a bad path, a bad config, data that does not fit the
schema) is a :class:`SynthError`. The CLI turns these into one clear line and a
non-zero exit. A storage or database fault that may pass is a :class:`TransientError`:
the tasks retry it, and one that persists is one line too. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations


class SynthError(Exception):
    """Base class for errors the user can act on."""


class SourceError(SynthError):
    """The extract cannot be read: missing path, unknown format, unreadable file."""


class ConfigError(SynthError):
    """The YAML config is invalid or does not match the data."""


class SchemaError(SynthError):
    """The data does not fit the schema (wrong types, unknown columns, empty table)."""


class OutputError(SynthError):
    """An output cannot be written: a path through a file, no space left, read-only, not permitted."""


class ModelError(SynthError):
    """A saved model cannot be loaded or used (missing files, incompatible versions)."""


class PrivacyError(SynthError):
    """Differential-privacy settings cannot be met (e.g. a budget too small for the data)."""


class TransientError(Exception):
    """A storage or database fault that may pass: a connection reset, a timeout, throttling.

    Deliberately not a :class:`SynthError`: the user has nothing to fix, so the tasks retry
    it with backoff, and a fault that outlasts the retries fails the run with this message
    (see :mod:`synth.io.faults`).
    """
