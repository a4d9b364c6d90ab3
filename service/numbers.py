"""Request models take a JSON number only as a number and a boolean only as a boolean: pydantic's
lax mode reads `true` as 1, `"0.5"` as 0.5 and `0` or `"yes"` as a boolean, a silent acceptance
the request contract forbids. A model deriving from `StrictScalars` gets one `before` validator
over its numeric fields (int or float, alone or in a union without bool) and its boolean ones;
the 400 names the field. A single field elsewhere: `Annotated[int | None, NUMBER]`, `BOOLEAN`."""

from __future__ import annotations

import functools
import types
import typing
from typing import Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationInfo, field_validator


def _members(annotation: Any) -> tuple[Any, ...]:
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    return typing.get_args(annotation) if union else (annotation,)


def _kind(annotation: Any) -> str | None:
    members = _members(annotation)
    if bool in members:
        return "boolean" if all(m in (bool, type(None)) for m in members) else None
    return "number" if any(m in (int, float) for m in members) and str not in members else None


@functools.cache
def scalar_fields(model: type[BaseModel]) -> dict[str, str]:
    """Field name -> "number" or "boolean", for the fields `StrictScalars` checks."""
    kinds = {name: _kind(field.annotation) for name, field in model.model_fields.items()}
    return {name: kind for name, kind in kinds.items() if kind is not None}


def _checked(value: Any, kind: str) -> Any:
    if kind == "number" and (isinstance(value, bool) or isinstance(value, str)):
        raise ValueError("Input should be a number")
    if kind == "boolean" and value is not None and not isinstance(value, bool):
        raise ValueError("Input should be a boolean (true or false)")
    return value


# For one field of a model that does not derive from `StrictScalars`: `Annotated[int | None, NUMBER]`.
NUMBER = BeforeValidator(lambda value: _checked(value, "number"))
BOOLEAN = BeforeValidator(lambda value: _checked(value, "boolean"))


class StrictScalars(BaseModel):
    """Also forbids unknown fields: every model deriving from it does (or says so in its own config)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _strict_scalars(cls, value: Any, info: ValidationInfo) -> Any:
        kind = scalar_fields(cls).get(info.field_name or "")
        return _checked(value, kind) if kind is not None else value
