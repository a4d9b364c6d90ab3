"""Static checks of a constraint: a JSON schema's size and nesting limits, dangling `$ref`s and
infinite recursion, and every regex (the request's own, or any a schema holds)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from service.errors import InvalidRequestError
from service.structured import linear_regex
from service.structured.regex_analysis import RegexSyntaxError, regex_hazard
from service.structured.types import StructuredLimits

# Keywords whose value is a subschema, a list of subschemas, or an object of subschemas (every
# draft the validator accepts). Other keywords hold data (`enum`, `const`, `default`, ...), whose
# `pattern` keys are not regexes.
_SCHEMA_KEYWORDS = (
    "additionalItems", "additionalProperties", "contains", "contentSchema", "else", "if", "items", "not",
    "propertyNames", "then", "unevaluatedItems", "unevaluatedProperties",
)
_SCHEMA_LIST_KEYWORDS = ("allOf", "anyOf", "oneOf", "prefixItems", "items")
_SCHEMA_MAP_KEYWORDS = ("$defs", "definitions", "dependencies", "dependentSchemas", "patternProperties", "properties")


def check_schema(schema: dict[str, Any], limits: StructuredLimits, param: str) -> None:
    """Refuse (InvalidRequestError) a schema that is invalid, too large or cannot finish."""
    try:
        size = len(json.dumps(schema))
    except (RecursionError, ValueError) as exc:
        raise schema_error(f"the schema nests deeper than {limits.max_depth} levels", param) from exc
    if size > limits.max_schema_bytes:
        raise schema_error(f"the schema is {size} bytes; the limit is {limits.max_schema_bytes}", param,
                            "schema_too_large")
    depth, properties = _measure(schema, limits, param)
    if depth > limits.max_depth:
        raise schema_error(f"the schema nests deeper than {limits.max_depth} levels", param, "schema_too_deep")
    if properties > limits.max_properties:
        raise schema_error(
            f"the schema declares {properties} properties; the limit is {limits.max_properties}", param,
            "schema_too_large",
        )
    try:
        validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as error:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise schema_error(f"at {where}: {error.message}", param) from error
    except RecursionError as exc:
        raise schema_error("the schema is too deeply nested", param, "schema_too_deep") from exc
    for where, pattern in _schema_regexes(schema):
        check_regex(pattern, limits, param, where)
    problem = _unresolvable_or_infinite(schema)
    if problem:
        raise schema_error(problem, param)


def schema_error(problem: str, param: str, code: str = "invalid_json_schema") -> InvalidRequestError:
    return InvalidRequestError(f"Invalid JSON schema: {problem}.", param=param, code=code)


def check_regex(pattern: str, limits: StructuredLimits, param: str, where: str | None = None) -> None:
    """Refuse (InvalidRequestError) a regex that is too long, does not parse, or could explode a
    backend's automaton or the reply validator. `where`: its path in a schema (None: the request's)."""
    subject = "The regex" if where is None else f"Invalid JSON schema: the regex at {where}"
    if len(pattern) > limits.max_regex_length:
        raise InvalidRequestError(f"{subject} is longer than {limits.max_regex_length} characters.",
                                  param=param, code="regex_too_large")
    try:
        problem = regex_hazard(pattern)
    except RegexSyntaxError as exc:
        raise InvalidRequestError(f"{subject} does not parse: {exc}.", param=param, code="invalid_regex") from exc
    if problem:
        raise InvalidRequestError(f"{subject} is refused: {problem}.", param=param, code="invalid_regex")
    try:
        linear_regex.compile_linear(pattern)  # replies are checked with RE2: it must take the pattern too
    except linear_regex.LinearRegexError as exc:
        raise InvalidRequestError(f"{subject} is refused: {exc} (RE2 syntax, which replies are checked with).",
                                  param=param, code="invalid_regex") from exc


def _schema_regexes(schema: Any) -> list[tuple[str, str]]:
    """(path, regex) of every regex the schema holds: each `pattern` (`propertyNames` ones included)
    and each `patternProperties` key, in every subschema, including those only a local `$ref` reaches."""
    found: list[tuple[str, str]] = []
    seen: set[int] = set()
    stack: list[tuple[Any, tuple[str, ...]]] = [(schema, ())]
    while stack:
        node, path = stack.pop()
        if not isinstance(node, dict) or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node.get("pattern"), str):
            found.append(("/".join((*path, "pattern")), node["pattern"]))
        if isinstance(node.get("patternProperties"), dict):
            found.extend(("/".join((*path, "patternProperties", str(key))), str(key))
                         for key in node["patternProperties"])
        for keyword in _SCHEMA_KEYWORDS:
            stack.append((node.get(keyword), (*path, keyword)))
        for keyword in _SCHEMA_LIST_KEYWORDS:
            if isinstance(node.get(keyword), list):
                stack.extend((child, (*path, keyword, str(i))) for i, child in enumerate(node[keyword]))
        for keyword in _SCHEMA_MAP_KEYWORDS:
            if isinstance(node.get(keyword), dict):
                stack.extend((child, (*path, keyword, str(name))) for name, child in node[keyword].items())
        ref = node.get("$ref")
        if isinstance(ref, str):
            try:
                stack.append((_resolve_local_ref(schema, ref), ("#" + ref[1:],)))
            except LookupError:
                pass  # refused later, as a dangling $ref
    return sorted(found)


def _resolve_local_ref(schema: Any, ref: str) -> Any:
    """The node a local `$ref` (a JSON pointer such as `#/$defs/item`) points to; LookupError otherwise."""
    if not ref.startswith("#"):
        raise LookupError(f"only local $ref are supported, not {ref!r}")
    node: Any = schema
    for part in [p for p in ref[1:].split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise LookupError(f"$ref {ref!r} points to nothing")
    return node


def _measure(schema: Any, limits: StructuredLimits, param: str) -> tuple[int, int]:
    """(nesting depth, total declared properties), iteratively and bounded; raises on huge enums."""
    max_depth, properties = 0, 0
    stack: list[tuple[Any, int]] = [(schema, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limits.max_depth:
            return depth, properties
        max_depth = max(max_depth, depth)
        if isinstance(node, dict):
            enum = node.get("enum")
            if isinstance(enum, list) and len(enum) > limits.max_enum_values:
                raise schema_error(
                    f"an enum has {len(enum)} values; the limit is {limits.max_enum_values}", param,
                    "schema_too_large",
                )
            props = node.get("properties")
            if isinstance(props, dict):
                properties += len(props)
            stack.extend((child, depth + 1) for child in node.values() if isinstance(child, dict | list))
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node if isinstance(child, dict | list))
    return max_depth, properties


def _unresolvable_or_infinite(schema: dict[str, Any]) -> str | None:
    """Find `$ref`s that point nowhere, and schemas that no finite JSON value can satisfy
    (recursion with no way out, such as `{"$ref": "#"}` or a required self-reference)."""
    refs: dict[str, Any] = {}

    def resolve(ref: str) -> Any:
        if ref not in refs:
            refs[ref] = _resolve_local_ref(schema, ref)
        return refs[ref]

    def walk_refs(node: Any) -> None:
        stack = [node]
        while stack:
            current = stack.pop()
            if isinstance(current, dict):
                if isinstance(current.get("$ref"), str):
                    resolve(current["$ref"])
                stack.extend(v for v in current.values() if isinstance(v, dict | list))
            elif isinstance(current, list):
                stack.extend(v for v in current if isinstance(v, dict | list))

    try:
        walk_refs(schema)
    except LookupError as exc:
        return str(exc)

    # Least fixpoint of "can produce a finite value": start pessimistic for every schema node
    # reached through a $ref and iterate until nothing changes.
    finite: dict[int, bool] = {}

    def can_finish(node: Any, seen: frozenset[int]) -> bool:
        if not isinstance(node, dict):
            return node is not False
        key = id(node)
        if key in seen:
            return finite.get(key, False)
        seen = seen | {key}
        ok = True
        if isinstance(node.get("$ref"), str):
            ok = can_finish(refs[node["$ref"]], seen)
        for combinator, need_all in (("allOf", True), ("anyOf", False), ("oneOf", False)):
            options = node.get(combinator)
            if isinstance(options, list) and options:
                results = [can_finish(option, seen) for option in options]
                ok = ok and (all(results) if need_all else any(results))
        props = node.get("properties") if isinstance(node.get("properties"), dict) else {}
        for name in node.get("required", []) if isinstance(node.get("required"), list) else []:
            if name in props:
                ok = ok and can_finish(props[name], seen)
        items = node.get("items")
        min_items = node.get("minItems", 0)
        if isinstance(items, dict) and isinstance(min_items, int) and min_items > 0:
            ok = ok and can_finish(items, seen)
        finite[key] = ok
        return ok

    for _ in range(8):  # a few rounds settle every realistic schema
        before = dict(finite)
        result = can_finish(schema, frozenset())
        if finite == before:
            break
    if not result:
        return "no finite JSON value satisfies it (recursive $ref with no way out)"
    return None
