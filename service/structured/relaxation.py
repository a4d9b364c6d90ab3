"""Schema relaxation: drop or widen what grammar backends cannot express, keep validating the full schema."""

from __future__ import annotations

from typing import Any

# Keywords the grammar backends cannot express (or, for guidance, express only in special cases)
# but the validator checks. A schema that no backend compiles, or whose output fails validation,
# is retried without them: the reply is still validated against the full schema, so strict
# requests stay schema-valid or fail with a 502.
RELAXABLE_KEYWORDS = frozenset({
    "uniqueItems", "not", "contains", "minContains", "maxContains", "dependentRequired",
    "dependentSchemas", "dependencies", "if", "then", "else", "propertyNames", "multipleOf",
    "unevaluatedProperties", "unevaluatedItems", "minProperties", "maxProperties",
})
# The string formats both xgrammar and guidance turn into grammar; others (uri-reference,
# uri-template, iri, regex, int32, ...) are left to the validator's format checker.
GRAMMAR_FORMATS = frozenset({"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid", "uri"})
_NAME_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")


def relaxed_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The schema in a form every grammar backend compiles (None when it is that already):
    without RELAXABLE_KEYWORDS and formats outside GRAMMAR_FORMATS, without length bounds beside a
    pattern or format (xgrammar refuses the pair), and with `oneOf` widened to `anyOf` (guidance
    refuses `oneOf`, xgrammar only approximates it): "at least one" is what a grammar can enforce,
    and the validator still checks "exactly one"."""
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
            if key in RELAXABLE_KEYWORDS or (key == "format" and value not in GRAMMAR_FORMATS):
                changed = True
            elif key == "oneOf" and isinstance(value, list):
                changed = True
                one_of = relax(value)
            elif key in _NAME_MAPS and isinstance(value, dict):
                out[key] = {name: relax(sub) for name, sub in value.items()}  # keys are names here
            else:
                out[key] = relax(value)
        if ("pattern" in out or "format" in out) and ("minLength" in out or "maxLength" in out):
            changed = True
            out.pop("minLength", None)
            out.pop("maxLength", None)
        if one_of is not None:
            if "anyOf" in out:  # both: each must still hold
                out["allOf"] = [*out.get("allOf", []), {"anyOf": one_of}]
            else:
                out["anyOf"] = one_of
        return out

    result = relax(schema)
    return result if changed else None


def relaxed_for_backend(relaxed: dict[str, Any], backend: str) -> dict[str, Any]:
    """The relaxed schema as `backend` gets it: guidance is also told to skip whatever else it
    does not implement (its `lenient` option, read from the schema's `x-guidance` key)."""
    if backend != "guidance":
        return relaxed
    options = relaxed.get("x-guidance")
    return {**relaxed, "x-guidance": {**(options if isinstance(options, dict) else {}), "lenient": True}}
