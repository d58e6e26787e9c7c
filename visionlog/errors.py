"""The platform's one error vocabulary: which failures are permanent, which are worth
retrying, which are outages of a store to wait out, and which HTTP status each answers.

Every consumer (processors, projections, replay) and the API decide with `classify` and
`http_status`, so a failure means the same thing wherever it happens:

- PERMANENT: the input can never succeed (corrupt bytes, unsupported content, an event that
  breaks its contract or sits on the wrong topic, a blob that does not exist). Dead-letter
  at once, no retry; 4xx to a client.
- OUTAGE: a store or the log is unreachable (connection refused, timeouts, 5xx from MinIO,
  a broker without leader). Wait it out with capped backoff for a bounded time, then
  dead-letter as retryable so a redrive can finish the work; 503 to a client.
- TRANSIENT: anything else unexpected. Retry a few times quickly (a race, a one-off), then
  dead-letter as retryable; 500 to a client.
"""

from __future__ import annotations

import errno
from enum import StrEnum
from typing import ClassVar


class Disposition(StrEnum):
    PERMANENT = "permanent"
    OUTAGE = "outage"
    TRANSIENT = "transient"

    @property
    def retryable(self) -> bool:
        return self is not Disposition.PERMANENT


class VisionlogError(Exception):
    """Base of the platform's own errors; subclasses fix the disposition and HTTP status."""

    disposition: ClassVar[Disposition] = Disposition.TRANSIENT
    http_status: ClassVar[int] = 500


class PermanentError(VisionlogError):
    """The input can never be processed as it is; retrying cannot help."""

    disposition = Disposition.PERMANENT
    http_status = 422


class ContractError(PermanentError):
    """An event breaks its contract: it does not decode, does not encode, or does not belong
    on the topic it was read from."""


class NotFoundError(PermanentError):
    """Something an event or a request points at does not exist."""

    http_status = 404


class OutageError(VisionlogError):
    """A store or the log cannot be reached now; the same call will work once it is back."""

    disposition = Disposition.OUTAGE
    http_status = 503


# Errors from the libraries the platform talks to stores with, by qualified class name, so
# this module imports none of them. Outages: the store did not answer or answered 5xx.
_OUTAGE_CLASSES = frozenset(
    {
        "urllib3.exceptions.MaxRetryError",
        "urllib3.exceptions.ProtocolError",
        "urllib3.exceptions.NewConnectionError",
        "urllib3.exceptions.ReadTimeoutError",
        "urllib3.exceptions.ConnectTimeoutError",
        "minio.error.ServerError",
        "psycopg.OperationalError",
        "psycopg_pool.PoolTimeout",
        "pymongo.errors.ConnectionFailure",
        "pymongo.errors.AutoReconnect",
        "pymongo.errors.ServerSelectionTimeoutError",
        "pymongo.errors.NetworkTimeout",
        "httpx.TransportError",
        "qdrant_client.http.exceptions.ResponseHandlingException",
    }
)
# S3 error codes that are answers, not outages: the object or bucket is not there.
_S3_MISSING = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchVersion"})
_S3_OUTAGE = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout"})
_CONNECTION_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ETIMEDOUT,
        errno.EPIPE,
    }
)


def _class_names(exc: BaseException) -> set[str]:
    return {f"{cls.__module__}.{cls.__qualname__}" for cls in type(exc).__mro__}


def classify(exc: BaseException) -> Disposition:
    """The disposition of any exception, the platform's own or a library's."""
    if isinstance(exc, VisionlogError):
        return exc.disposition
    names = _class_names(exc)
    if "minio.error.S3Error" in names:
        code = str(getattr(exc, "code", ""))
        if code in _S3_MISSING:
            return Disposition.PERMANENT
        return Disposition.OUTAGE if code in _S3_OUTAGE else Disposition.TRANSIENT
    if names & _OUTAGE_CLASSES:
        return Disposition.OUTAGE
    if "confluent_kafka.error.KafkaException" in names or "cimpl.KafkaException" in names:
        cause = exc.args[0] if exc.args else None
        retriable = getattr(cause, "retriable", None)
        return Disposition.OUTAGE if callable(retriable) and retriable() else Disposition.TRANSIENT
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return Disposition.OUTAGE
    if isinstance(exc, OSError) and exc.errno in _CONNECTION_ERRNOS:
        return Disposition.OUTAGE
    return Disposition.TRANSIENT


def http_status(exc: BaseException) -> int:
    """The HTTP status a client gets for this failure."""
    if isinstance(exc, VisionlogError):
        return exc.http_status
    disposition = classify(exc)
    if disposition is Disposition.OUTAGE:
        return 503
    if disposition is Disposition.PERMANENT:
        return 404 if "minio.error.S3Error" in _class_names(exc) else 422
    return 500
