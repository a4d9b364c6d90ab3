"""Errors the service raises for clients, in OpenAI's vocabulary (status, type, code, param), and
the one table that maps every failure (ours, the engine's, the client's) to what the client gets
and how metrics count it. Every endpoint goes through `failure_of`; nothing maps exceptions ad hoc.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from service.engine.types import EngineRequestError, EngineUnavailableError, GenerationFailedError


class ServiceError(Exception):
    status: int = 500
    type: str = "server_error"
    code: str | None = None
    retry_after: int | None = None  # seconds, sent as `Retry-After` (429 and 503)

    def __init__(
        self, message: str, *, param: str | None = None, code: str | None = None, status: int | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if retry_after is not None:
            self.retry_after = retry_after


class InvalidRequestError(ServiceError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_value"


class UnrecognizedArgumentError(InvalidRequestError):
    code = "unrecognized_argument"

    def __init__(self, name: str) -> None:
        super().__init__(f"Unrecognized request argument supplied: {name}", param=name)


class ContextLengthExceededError(InvalidRequestError):
    code = "context_length_exceeded"


class ModelNotFoundError(ServiceError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model `{model}` does not exist or you do not have access to it.", param="model"
        )


class NotFoundError(ServiceError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ConflictError(ServiceError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


class DependencyFailedError(ServiceError):
    """A store the request depends on (an adapter's object store or hub) failed or timed out."""

    status = 424
    type = "server_error"
    code = "dependency_failed"


class PayloadTooLargeError(ServiceError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class RateLimitedError(ServiceError):
    """Too much work queued (or a key over its limits): try again after `retry_after` seconds."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"
    retry_after = 1


class EngineNotReadyError(ServiceError):
    status = 503
    type = "server_error"
    code = "engine_unavailable"
    retry_after = 5


class OverloadedError(ServiceError):
    """A shared resource (e.g. the constraint compiler pool) is saturated; the engine is fine."""

    status = 503
    type = "server_error"
    code = "overloaded"
    retry_after = 1


class UpstreamGenerationError(ServiceError):
    """Generation ran but could not produce an acceptable result (e.g. no schema-valid output)."""

    status = 502
    type = "server_error"
    code = "generation_failed"


class RequestTimeoutError(ServiceError):
    status = 504
    type = "server_error"
    code = "timeout"


# ------------------------------------------------------------------ the table
@dataclass(frozen=True)
class Failure:
    """What one failure becomes: the HTTP status and OpenAI error fields the client receives, and
    the `status` label of `loragate_requests_total` (499: the client went away, nothing was sent)."""

    status: int
    type: str
    code: str | None
    outcome: str
    message: str | None = None  # None: the exception's own message


INTERNAL_ERROR_MESSAGE = "The server had an error while processing your request."

# The message a request's work is cancelled with when its time is up (vs. a client that left).
TIMEOUT_CANCEL = "loragate: request timeout"
_TIMED_OUT = Failure(504, "server_error", "timeout", "504", "The request timed out.")

# Exception type -> Failure, first match wins (subclasses before their bases). `ServiceError`
# subclasses carry their own status/type/code; the rest are listed here once.
FAILURE_TABLE: tuple[tuple[type[BaseException], Failure | None], ...] = (
    (ServiceError, None),  # its own status, type and code
    (EngineUnavailableError, Failure(503, "server_error", "engine_unavailable", "503")),
    (EngineRequestError, Failure(400, "invalid_request_error", "invalid_value", "400")),
    (GenerationFailedError, Failure(502, "server_error", "generation_failed", "502")),
    (asyncio.CancelledError, Failure(499, "client_closed_request", "client_closed_request", "499",
                                     "The client closed the connection before the reply was complete.")),
    (TimeoutError, _TIMED_OUT),
    # Anything else is a bug: a 500 that says nothing about internals (never a 400 in disguise).
    (BaseException, Failure(500, "server_error", "internal_error", "500", INTERNAL_ERROR_MESSAGE)),
)


def failure_of(exc: BaseException) -> Failure:
    if isinstance(exc, asyncio.CancelledError) and exc.args == (TIMEOUT_CANCEL,):
        return _TIMED_OUT
    for kind, failure in FAILURE_TABLE:
        if isinstance(exc, kind):
            if failure is None:
                assert isinstance(exc, ServiceError)
                return Failure(exc.status, exc.type, exc.code, str(exc.status), exc.message)
            return failure
    raise AssertionError("unreachable: BaseException matches everything")


def as_service_error(exc: BaseException) -> ServiceError:
    """The client-facing error for any failure (a ServiceError is returned as is)."""
    if isinstance(exc, ServiceError):
        return exc
    failure = failure_of(exc)
    error = ServiceError(failure.message or str(exc) or failure.type, code=failure.code, status=failure.status)
    error.type = failure.type
    if failure.status == 503:
        error.retry_after = EngineNotReadyError.retry_after
    return error
