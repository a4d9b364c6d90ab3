"""The one exception every validation step raises, with a stable machine-readable `code`."""

from __future__ import annotations


class AdapterValidationError(Exception):
    """A refused adapter, archive, name or path. `code` is stable; `message` is for humans."""

    type = "invalid_request_error"

    def __init__(self, message: str, code: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.status = status

    def __repr__(self) -> str:
        return f"AdapterValidationError(code={self.code!r}, status={self.status}, message={self.message!r})"


def fail(message: str, code: str, param: str | None = None, status: int = 400) -> AdapterValidationError:
    """Build (not raise) the error, so call sites read `raise fail(...)`."""
    return AdapterValidationError(message, code, param=param, status=status)
