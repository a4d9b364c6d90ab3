"""JSON merge patch (RFC 7396) of a route spec: what `PATCH /admin/routes/NAME` applies.

A member set to null deletes that key, objects merge recursively, anything else (lists included:
`variants` is replaced whole) replaces the value. The merged spec is validated as a whole, so a
patch is accepted exactly when the route it produces would be accepted by PUT.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from service.errors import InvalidRequestError
from service.routing.types import RouteSpec


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 section 2: the result of applying `patch` to `target` (neither is modified)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def patched_spec(spec: RouteSpec, patch: dict[str, Any]) -> RouteSpec:
    """`spec` with `patch` merged in; InvalidRequestError naming the first invalid field."""
    # Unset fields dropped: `{"guard": {"max_error_rate": 0.1}}` on a route without a guard then
    # means a guard with that one threshold (and the defaults), not a merge into nulls.
    merged = merge_patch(spec.model_dump(mode="json", exclude_none=True), patch)
    try:
        return RouteSpec.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(part) for part in first.get("loc", ())) or None
        message = first.get("msg", "invalid value")
        raise InvalidRequestError(f"The patched route is invalid: {param or 'route'}: {message}.",
                                  param=param, code="invalid_value") from None
