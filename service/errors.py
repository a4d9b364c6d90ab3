"""Errors the service raises for clients, in OpenAI's vocabulary (status, type, code, param), and
the one table that maps every failure (ours, the engine's, the client's) to what the client gets
and how metrics count it. Every endpoint goes through `failure_of`; nothing maps exceptions ad hoc.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from service.engine.types import EngineRequestError, EngineUnavailableError, GenerationFailedError


class ServiceError(Exception):
    """A failure the client is told about. Its status, type, default code and Retry-After are its
    row of `FAILURE_TABLE` (a subclass is a row); a raise site may name a more specific `code` of
    the same row (e.g. `invalid_regex`) and a computed `retry_after` (a rate limit's wait)."""

    def __init__(
        self, message: str, *, param: str | None = None, code: str | None = None, retry_after: int | None = None,
        failure: Failure | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self._code, self._retry_after, self._failure = code, retry_after, failure

    @property
    def row(self) -> Failure:
        """Its row of the table (`failure`: an error made by `as_service_error` from another one's row)."""
        return self._failure or table_row(type(self))

    @property
    def status(self) -> int:
        return self.row.status

    @property
    def type(self) -> str:
        return self.row.type

    @property
    def code(self) -> str | None:
        return self._code or self.row.code

    @property
    def retry_after(self) -> int | None:
        """Seconds, sent as `Retry-After` (429 and 503)."""
        return self._retry_after if self._retry_after is not None else self.row.retry_after


class InvalidRequestError(ServiceError):
    pass


class UnrecognizedArgumentError(InvalidRequestError):
    def __init__(self, name: str) -> None:
        super().__init__(f"Unrecognized request argument supplied: {name}", param=name)


class ContextLengthExceededError(InvalidRequestError):
    pass


class AuthenticationError(ServiceError):
    """No key, an unknown key or a malformed `Authorization` header (OpenAI's 401)."""


class PermissionDeniedError(ServiceError):
    """A valid key without the role the route needs (an API key on /admin)."""


class ModelNotFoundError(ServiceError):
    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model `{model}` does not exist or you do not have access to it.", param="model"
        )


class NotFoundError(ServiceError):
    pass


class MethodNotAllowedError(ServiceError):
    pass


class ConflictError(ServiceError):
    pass


class DependencyFailedError(ServiceError):
    """A store the request depends on (an adapter's object store or hub) failed or timed out."""


class PayloadTooLargeError(ServiceError):
    pass


class UnsupportedMediaTypeError(ServiceError):
    pass


class RateLimitedError(ServiceError):
    """Too much work queued (or a key over its limits): try again after `retry_after` seconds."""


class UpstreamGenerationError(ServiceError):
    """Generation ran but could not produce an acceptable result (e.g. no schema-valid output)."""


class EngineNotReadyError(ServiceError):
    pass


class OverloadedError(ServiceError):
    """A shared resource (e.g. the constraint compiler pool) is saturated; the engine is fine."""


class ShuttingDownError(ServiceError):
    """The replica is draining: new requests go elsewhere (health probes still answer)."""


class RequestTimeoutError(ServiceError):
    pass


# ------------------------------------------------------------------ the table
@dataclass(frozen=True)
class Failure:
    """What one failure becomes: the HTTP status, OpenAI error fields and headers the client
    receives, and the `status` label of `loragate_requests_total` (499: the client went away,
    nothing was sent). `retry_after`: seconds sent as `Retry-After`; `headers`: always sent."""

    status: int
    type: str
    code: str | None
    outcome: str
    message: str | None = None  # None: the exception's own message
    retry_after: int | None = None
    headers: tuple[tuple[str, str], ...] = ()


INTERNAL_ERROR_MESSAGE = "The server had an error while processing your request."

# The message a request's work is cancelled with when its time is up (vs. a client that left).
TIMEOUT_CANCEL = "loragate: request timeout"
_TIMED_OUT = Failure(504, "server_error", "timeout", "504", "The request timed out.")
_INVALID = "invalid_request_error"


def _row(status: int, type_: str, code: str, retry_after: int | None = None,
         headers: tuple[tuple[str, str], ...] = ()) -> Failure:
    return Failure(status, type_, code, str(status), retry_after=retry_after, headers=headers)


# Exception type -> Failure, first match wins (subclasses before their bases): every error
# response the service writes is one of these rows (`service.api.errors.failure_response`).
FAILURE_TABLE: tuple[tuple[type[BaseException], Failure], ...] = (
    (UnrecognizedArgumentError, _row(400, _INVALID, "unrecognized_argument")),
    (ContextLengthExceededError, _row(400, _INVALID, "context_length_exceeded")),
    (InvalidRequestError, _row(400, _INVALID, "invalid_value")),
    # OpenAI's own type for a bad key is invalid_request_error; the challenge names the scheme.
    (AuthenticationError, _row(401, _INVALID, "invalid_api_key", headers=(("www-authenticate", "Bearer"),))),
    (PermissionDeniedError, _row(403, _INVALID, "insufficient_permissions")),
    (ModelNotFoundError, _row(404, _INVALID, "model_not_found")),
    (NotFoundError, _row(404, _INVALID, "not_found")),
    (MethodNotAllowedError, _row(405, _INVALID, "method_not_allowed")),
    (ConflictError, _row(409, _INVALID, "conflict")),
    (PayloadTooLargeError, _row(413, _INVALID, "payload_too_large")),
    (UnsupportedMediaTypeError, _row(415, _INVALID, "unsupported_media_type")),
    (RateLimitedError, _row(429, "rate_limit_error", "rate_limit_exceeded", retry_after=1)),
    (DependencyFailedError, _row(424, "server_error", "dependency_failed")),
    (UpstreamGenerationError, _row(502, "server_error", "generation_failed")),
    (EngineNotReadyError, _row(503, "server_error", "engine_unavailable", retry_after=5)),
    (OverloadedError, _row(503, "server_error", "overloaded", retry_after=1)),
    (ShuttingDownError, _row(503, "server_error", "shutting_down", retry_after=1, headers=(("connection", "close"),))),
    (RequestTimeoutError, _row(504, "server_error", "timeout")),
    (ServiceError, _row(500, "server_error", "internal_error")),  # a bare one: its own message
    # The engine's errors, and Python's.
    (EngineUnavailableError, _row(503, "server_error", "engine_unavailable", retry_after=5)),
    (EngineRequestError, _row(400, _INVALID, "invalid_value")),
    (GenerationFailedError, _row(502, "server_error", "generation_failed")),
    (asyncio.CancelledError, Failure(499, "client_closed_request", "client_closed_request", "499",
                                     "The client closed the connection before the reply was complete.")),
    (TimeoutError, _TIMED_OUT),
    # Anything else is a bug: a 500 that says nothing about internals (never a 400 in disguise).
    (BaseException, Failure(500, "server_error", "internal_error", "500", INTERNAL_ERROR_MESSAGE)),
)


def table_row(kind: type[BaseException]) -> Failure:
    """The row of an exception type: the first whose type it is or derives from."""
    for row_kind, failure in FAILURE_TABLE:
        if issubclass(kind, row_kind):
            return failure
    raise AssertionError("unreachable: BaseException matches everything")


def failure_of(exc: BaseException) -> Failure:
    """The failure as the client gets it: the row, with a ServiceError's own message, code and wait."""
    if isinstance(exc, asyncio.CancelledError) and exc.args == (TIMEOUT_CANCEL,):
        return _TIMED_OUT
    if isinstance(exc, ServiceError):
        return replace(exc.row, code=exc.code, message=exc.message, retry_after=exc.retry_after)
    failure = table_row(type(exc))
    return failure if failure.message is not None else replace(failure, message=str(exc) or failure.type)


def as_service_error(exc: BaseException) -> ServiceError:
    """The client-facing error for any failure (a ServiceError is returned as is)."""
    if isinstance(exc, ServiceError):
        return exc
    failure = failure_of(exc)
    return ServiceError(failure.message or failure.type, failure=failure)
