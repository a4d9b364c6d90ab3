"""Errors the service raises for clients, in OpenAI's vocabulary (status, type, code, param)."""

from __future__ import annotations


class ServiceError(Exception):
    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(
        self, message: str, *, param: str | None = None, code: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class InvalidRequestError(ServiceError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_value"


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


class PayloadTooLargeError(ServiceError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class EngineNotReadyError(ServiceError):
    status = 503
    type = "server_error"
    code = "engine_unavailable"


class UpstreamGenerationError(ServiceError):
    """Generation ran but could not produce an acceptable result (e.g. no schema-valid output)."""

    status = 502
    type = "server_error"
    code = "generation_failed"
