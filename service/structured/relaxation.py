"""Schema relaxation: drop or widen what grammar backends cannot express, keep validating the full schema."""

from __future__ import annotations

from typing import Any

# Keywords the grammar backends cannot express but the validator checks. A schema that no
# backend compiles is retried without them: the reply is still validated against the full
# schema, so strict requests stay schema-valid or fail with a 502.
RELAXABLE_KEYWORDS = frozenset({
    "uniqueItems", "not", "contains", "minContains", "maxContains", "dependentRequired",
    "dependentSchemas", "if", "then", "else", "propertyNames", "multipleOf",
})
_NAME_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")


def relaxed_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The schema without RELAXABLE_KEYWORDS and with `oneOf` widened to `anyOf` (None when it has
    neither). guidance refuses `oneOf` and xgrammar only approximates it; "at least one" is what a
    grammar can enforce, and the validator still checks "exactly one"."""
    changed = False

    def relax(node: Any) -> Any:
        nonlocal changed
        if isinstance(node, list):
            return [relax(item) for item in node]
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        one_of: list[Any] | None = None
        for key, value in node.items():
            if key in RELAXABLE_KEYWORDS:
                changed = True
            elif key == "oneOf" and isinstance(value, list):
                changed = True
                one_of = relax(value)
            elif key in _NAME_MAPS and isinstance(value, dict):
                out[key] = {name: relax(sub) for name, sub in value.items()}  # keys are names here
            else:
                out[key] = relax(value)
        if one_of is not None:
            if "anyOf" in out:  # both: each must still hold
                out["allOf"] = [*out.get("allOf", []), {"anyOf": one_of}]
            else:
                out["anyOf"] = one_of
        return out

    result = relax(schema)
    return result if changed else None
