"""Every error leaves the service in OpenAI's shape: {"error": {message, type, param, code}}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pydantic import BaseModel

from service.errors import ServiceError, as_service_error

logger = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None

    @classmethod
    def of(cls, error: ServiceError) -> ErrorDetail:
        return cls(message=error.message, type=error.type, param=error.param, code=error.code)


class ErrorResponse(BaseModel):
    error: ErrorDetail


# Every error status a route may answer with, for the OpenAPI document.
ERROR_RESPONSES = {code: {"model": ErrorResponse} for code in (400, 404, 409, 413, 415, 429, 502, 503, 504)}

_HTTP_ERROR_TYPES = {
    400: ("invalid_request_error", "invalid_value"),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "forbidden"),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "payload_too_large"),
    415: ("invalid_request_error", "unsupported_media_type"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


def error_response(
    status: int, message: str, type_: str, param: str | None = None, code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(error=ErrorDetail(message=message, type=type_, param=param, code=code))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _validation_param(loc: tuple[int | str, ...]) -> str | None:
    # Drop the "body" prefix and pydantic's union-branch names so `param` reads like OpenAI's.
    location = loc[1:] if loc and loc[0] == "body" else loc
    parts = [str(part) for part in location if not str(part).startswith(("function-", "list[", "str", "constrained"))]
    return ".".join(parts) or None


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "Invalid request.", None
    first = errors[0]
    if first.get("type") == "json_invalid":
        return "We could not parse the JSON body of your request: it is not valid JSON.", None
    param = _validation_param(tuple(first.get("loc", ())))
    if first.get("type") in ("model_attributes_type", "dict_type") and param is None:
        return "The request body must be a JSON object.", None
    message = first.get("msg", "Invalid value")
    if param:
        message = f"Invalid value for '{param}': {message}"
    extra = len(errors) - 1
    if extra > 0:
        message += f" (and {extra} more problem{'s' if extra > 1 else ''})"
    return message, param


def service_error_response(exc: BaseException) -> JSONResponse:
    """Any failure as the client sees it, mapped once by `service.errors.failure_of`."""
    error = as_service_error(exc)
    headers = {"retry-after": str(error.retry_after)} if error.retry_after is not None else None
    return JSONResponse(ErrorResponse(error=ErrorDetail.of(error)).model_dump(), status_code=error.status,
                        headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        if exc.status >= 500:
            logger.warning("request failed: %s", exc.message)
        return service_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return error_response(400, message, "invalid_request_error", param, "invalid_value")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        type_, code = _HTTP_ERROR_TYPES.get(exc.status_code, ("server_error", None))
        return error_response(exc.status_code, str(exc.detail), type_, None, code, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        if as_service_error(exc).status >= 500:
            logger.exception("request failed")
        return service_error_response(exc)
