"""Request models refuse a JSON boolean where they take a number: pydantic's lax mode reads `true`
as 1 and `false` as 0, a silent acceptance the request contract forbids. A model deriving from
`NumbersNotBooleans` gets one `before` validator over all its numeric fields (int or float, alone
or in a union without bool); the 400 names the field."""

from __future__ import annotations

import functools
import types
import typing
from typing import Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationInfo, field_validator


def _numeric(annotation: Any) -> bool:
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    args = typing.get_args(annotation) if union else (annotation,)
    return any(arg in (int, float) for arg in args) and bool not in args


@functools.cache
def _numeric_fields(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(name for name, field in model.model_fields.items() if _numeric(field.annotation))


def _refuse(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("Input should be a number, not a boolean")
    return value


# One field of a model that may not derive from `NumbersNotBooleans`: `Annotated[int, NOT_BOOLEAN]`.
NOT_BOOLEAN = BeforeValidator(_refuse)


class NumbersNotBooleans(BaseModel):
    """Also forbids unknown fields: every model deriving from it does (or says so in its own config)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_booleans(cls, value: Any, info: ValidationInfo) -> Any:
        return _refuse(value) if info.field_name in _numeric_fields(cls) else value
