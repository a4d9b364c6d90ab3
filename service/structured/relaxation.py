"""Schema relaxation: drop what grammar backends cannot express, keep validating the full schema."""

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
    """The schema without RELAXABLE_KEYWORDS (None when it has none)."""
    changed = False

    def relax(node: Any) -> Any:
        nonlocal changed
        if isinstance(node, list):
            return [relax(item) for item in node]
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in RELAXABLE_KEYWORDS:
                changed = True
            elif key in _NAME_MAPS and isinstance(value, dict):
                out[key] = {name: relax(sub) for name, sub in value.items()}  # keys are names here
            else:
                out[key] = relax(value)
        return out

    result = relax(schema)
    return result if changed else None
