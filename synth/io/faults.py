"""Transient faults of storage and databases, told apart from errors the user must fix.

A connection reset, a timeout, a throttled request (HTTP 429/503, S3 ``SlowDown``), a
database connection dropped mid-query: the same call may well succeed a moment later, so
these become :class:`~synth.errors.TransientError`, which the tasks retry with backoff.
A missing file, a refused permission, a malformed file or a bad query fail the same way on
every attempt: they stay user errors (a :class:`~synth.errors.SynthError`: one clear line,
no retry).

Drivers report these faults in many shapes (builtin ``ConnectionError``/``TimeoutError``,
an errno, an HTTP status, an S3 or SQLSTATE code, SQLAlchemy's ``connection_invalidated``,
or only a message, as PyArrow's and Polars' cloud readers do), and often wrapped in another
exception; :func:`transient_fault` looks at the whole chain. Nothing here imports a cloud
or database package: the shapes are recognised by attribute and class name.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Iterator

from synth.errors import SourceError, SynthError, TransientError

# Errors that say the request itself is wrong: retrying cannot help, whatever else the chain holds.
_PERMANENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)
_TRANSIENT_ERRNOS = {
    errno.ECONNRESET, errno.ECONNABORTED, errno.ECONNREFUSED, errno.ETIMEDOUT, errno.EPIPE, errno.EAGAIN,
    errno.EHOSTUNREACH, errno.EHOSTDOWN, errno.ENETUNREACH, errno.ENETDOWN, errno.ENETRESET, errno.ESTALE,
}
_TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}
# S3, GCS and Azure error codes that mean "slow down" or "try again".
_TRANSIENT_CODES = {
    "SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException",
    "RequestTimeout", "RequestTimeoutException", "ServiceUnavailable", "InternalError", "ServerBusy",
    "OperationTimedOut", "PriorRequestNotComplete",
}
# SQLSTATE: connection exceptions (class 08), the server shutting down or not yet up (57P01-57P03),
# too many connections (53300), serialization failure and deadlock (40001, 40P01).
_TRANSIENT_SQLSTATE = re.compile(r"^(08...|57P0[123]|53300|40001|40P01)$")
# Driver exception classes (by name, so that none needs importing) that mean the link failed.
_TRANSIENT_CLASSES = {
    "ConnectionError", "TimeoutError", "DisconnectionError", "ReadTimeoutError", "ConnectTimeoutError",
    "EndpointConnectionError", "ClientConnectionError", "ServerDisconnectedError", "ServerTimeoutError",
    "ClientPayloadError", "IncompleteRead", "ServiceRequestError", "ServiceResponseError", "ResponseStreamingError",
}
# What PyArrow's S3 filesystem, Polars' object store and libpq say when only a message is left.
_TRANSIENT_TEXT = re.compile(
    r"connection (?:was )?(?:reset|aborted|refused|lost)|server closed the connection|terminating connection"
    r"|could not (?:receive|send) data|broken pipe|ssl syscall|timed out|timeout|temporar(?:il)?y unavailable"
    r"|temporary failure|service unavailable|slow[ _]?down|throttl|too many (?:requests|connections)|request ?limit"
    r"|server ?busy|network_connection|network is unreachable|database is locked"
    r"|the database system is (?:starting up|shutting down|in recovery mode)"
    r"|status(?: code)?:? ?(?:408|429|500|502|503|504)\b",
    re.IGNORECASE,
)


def transient_fault(exc: BaseException) -> str | None:
    """What makes ``exc`` a fault worth retrying (e.g. ``"ConnectionResetError"``), or None.

    None for a user error (a :class:`SynthError`; a missing file, a refused permission), for a
    malformed file or a bad query, and for anything not recognised as a passing fault.
    """
    if isinstance(exc, (SynthError, *_PERMANENT)):
        return None
    for error in _chain(exc):
        if isinstance(error, TransientError):
            return "transient fault"
        if isinstance(error, _PERMANENT):
            return None
        reason = _structured(error)
        if reason:
            return reason
    for error in _chain(exc):
        match = _TRANSIENT_TEXT.search(str(error))
        if match:
            return match.group(0).lower()
    return None


def storage_error(exc: BaseException, what: str, user_error: type[SynthError] = SourceError) -> Exception:
    """The exception to raise for ``exc``, caught while doing ``what`` (e.g. ``"cannot read Parquet x"``).

    A :class:`TransientError` when the fault may pass (the task retries it), else ``user_error``;
    both carry ``what`` and the first line of the driver's message.
    """
    detail = _first_line(exc)
    fault = transient_fault(exc)
    if fault is None:
        return user_error(f"{what}: {detail}")
    return TransientError(f"{what}: {detail} (a transient fault: {fault})")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, the driver error it wraps (SQLAlchemy's ``orig``) and its causes, each once."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        error = stack.pop(0)
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        yield error
        orig = getattr(error, "orig", None)
        stack += [orig if isinstance(orig, BaseException) else None, error.__cause__, error.__context__]


def _structured(error: BaseException) -> str | None:
    """The transient fault an exception's type, errno, status or code shows, or None."""
    if getattr(error, "connection_invalidated", False) is True:
        return "database connection lost"
    names = {kind.__name__ for kind in type(error).__mro__}
    found = names & _TRANSIENT_CLASSES
    if found:
        return type(error).__name__
    if isinstance(error, OSError) and error.errno in _TRANSIENT_ERRNOS:
        return errno.errorcode.get(error.errno, "network error")
    sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if isinstance(sqlstate, str) and _TRANSIENT_SQLSTATE.match(sqlstate):
        return f"SQLSTATE {sqlstate}"
    for attribute in ("status", "status_code"):
        status = getattr(error, attribute, None)
        if isinstance(status, int) and status in _TRANSIENT_HTTP:
            return f"HTTP {status}"
    response = getattr(error, "response", None)
    if isinstance(response, dict):  # botocore's ClientError
        code = (response.get("Error") or {}).get("Code")
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        if code in _TRANSIENT_CODES:
            return str(code)
        if status in _TRANSIENT_HTTP:
            return f"HTTP {status}"
    code = getattr(error, "error_code", None) or getattr(error, "code", None)
    if isinstance(code, str) and code in _TRANSIENT_CODES:
        return code
    return None


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def read_failure(exc: BaseException, what: str, user_error: SynthError) -> Exception:
    """A :class:`TransientError` for ``what`` when ``exc`` may pass, else ``user_error`` (an explained one)."""
    return user_error if transient_fault(exc) is None else storage_error(exc, what)
