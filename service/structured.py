"""Structured output: turn a request's response_format (or vLLM-style extras) into an engine
constraint, refuse constraints that could hurt the engine, and check decoded replies.

The guard runs before anything reaches the engine: size, depth, enum and property limits, a
schema that cannot produce a finite value, regexes with nested unbounded repeats, and a
time-bounded trial conversion in a separate process (so a pathological schema costs that process,
not the event loop or the engine).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import multiprocessing
import re
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Literal

import jsonschema
import regex as regex_engine
from pydantic import BaseModel

from service.api.protocol import SamplingFields
from service.engine import STRUCTURED_OUTPUT_BACKENDS, StructuredConstraint
from service.errors import InvalidRequestError

try:  # Python 3.11+
    import re._parser as sre_parse  # type: ignore[import-not-found]
    from re._constants import MAXREPEAT  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - older Pythons
    import sre_parse  # type: ignore[no-redef]
    from sre_constants import MAXREPEAT  # type: ignore[no-redef]

ValidationResult = Literal["valid", "invalid", "truncated", "unchecked"]


class StructuredLimits(BaseModel):
    max_schema_bytes: int = 64 * 1024
    max_depth: int = 32
    max_enum_values: int = 1024
    max_properties: int = 512
    max_regex_length: int = 2048
    max_grammar_bytes: int = 64 * 1024
    max_choices: int = 256
    compile_timeout_s: float = 5.0
    cache_entries: int = 1024


class StructuredRequest(BaseModel):
    constraint: StructuredConstraint
    kind: Literal["json_schema", "json_object", "regex", "choice", "grammar"]
    schema_: dict[str, Any] | None = None  # for post-decoding validation
    strict: bool = False
    param: str = "response_format"


# ------------------------------------------------------------------ parsing
def structured_request_from(request: SamplingFields) -> StructuredRequest | None:
    """At most one constraint per request, from whichever field the client used."""
    found: list[StructuredRequest] = []
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_object":
        found.append(StructuredRequest(constraint=StructuredConstraint(json_object=True), kind="json_object"))
    elif fmt is not None and fmt.type == "json_schema" and fmt.json_schema is not None:
        schema = fmt.json_schema.schema_ or {}
        found.append(StructuredRequest(
            constraint=StructuredConstraint(json_schema=schema), kind="json_schema", schema_=schema,
            strict=bool(fmt.json_schema.strict), param="response_format.json_schema.schema",
        ))
    extras = dict(request.structured_outputs or {})
    backend = extras.pop("backend", None)
    if backend is not None and backend not in STRUCTURED_OUTPUT_BACKENDS:
        raise InvalidRequestError(
            f"structured_outputs.backend must be one of {', '.join(STRUCTURED_OUTPUT_BACKENDS)}.",
            param="structured_outputs.backend",
        )
    for key, value in (("json", request.guided_json), ("regex", request.guided_regex),
                       ("choice", request.guided_choice), ("grammar", request.guided_grammar)):
        if value is not None:
            extras[key] = value
    unknown = set(extras) - {"json", "regex", "choice", "grammar", "json_object"}
    if unknown:
        raise InvalidRequestError(
            f"Unknown structured_outputs field(s): {', '.join(sorted(unknown))}.", param="structured_outputs"
        )
    for key, value in extras.items():
        found.append(_from_extra(key, value))
    if len(found) > 1:
        raise InvalidRequestError(
            "Use only one structured-output constraint per request (response_format, json, regex, "
            "choice or grammar).", param="response_format",
        )
    if not found:
        return None
    chosen = found[0]
    if backend is not None:
        chosen.constraint.backend = backend
    return chosen


def _from_extra(key: str, value: Any) -> StructuredRequest:
    param = f"structured_outputs.{key}"
    if key == "json":
        if not isinstance(value, dict):
            raise InvalidRequestError("The JSON schema must be a JSON object.", param=param)
        return StructuredRequest(constraint=StructuredConstraint(json_schema=value), kind="json_schema",
                                 schema_=value, param=param)
    if key == "json_object":
        if value is not True:
            raise InvalidRequestError("json_object must be true when given.", param=param)
        return StructuredRequest(constraint=StructuredConstraint(json_object=True), kind="json_object", param=param)
    if key == "choice":
        if not isinstance(value, list) or not value or not all(isinstance(c, str) and c for c in value):
            raise InvalidRequestError("choice must be a non-empty list of non-empty strings.", param=param)
        return StructuredRequest(constraint=StructuredConstraint(choice=value), kind="choice", param=param)
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequestError(f"{key} must be a non-empty string.", param=param)
    if key == "regex":
        return StructuredRequest(constraint=StructuredConstraint(regex=value), kind="regex", param=param)
    return StructuredRequest(constraint=StructuredConstraint(grammar=value), kind="grammar", param=param)


# -------------------------------------------------------------------- guard
class StructuredGuard:
    """Refuses constraints that are invalid or too costly, before they reach the engine."""

    def __init__(self, limits: StructuredLimits) -> None:
        self.limits = limits
        self._pool: ProcessPoolExecutor | None = None
        self._one_at_a_time = asyncio.Lock()
        self._passed: OrderedDict[str, None] = OrderedDict()  # LRU of constraints that compiled in time

    async def check(self, request: StructuredRequest, backends: list[str] | None = None) -> None:
        """Refuse the constraint (InvalidRequestError) unless it is safe to hand to `backends`."""
        if request.kind == "json_schema":
            self._check_schema(request.schema_ or {}, request.param)
        elif request.kind == "regex":
            self._check_regex(request.constraint.regex or "", request.param)
        elif request.kind == "grammar":
            grammar = request.constraint.grammar or ""
            if len(grammar.encode()) > self.limits.max_grammar_bytes:
                raise InvalidRequestError(
                    f"The grammar is larger than {self.limits.max_grammar_bytes} bytes.", param=request.param,
                    code="grammar_too_large",
                )
        elif request.kind == "choice":
            choices = request.constraint.choice or []
            if len(choices) > self.limits.max_choices:
                raise InvalidRequestError(f"At most {self.limits.max_choices} choices are allowed.",
                                          param=request.param, code="too_many_choices")
        if request.kind in ("json_schema", "regex", "grammar"):
            await self._trial_compile(request, "outlines" in (backends or []))

    # ---- JSON schema
    def _check_schema(self, schema: dict[str, Any], param: str) -> None:
        limits = self.limits
        try:
            size = len(json.dumps(schema))
        except (RecursionError, ValueError) as exc:
            raise _schema_error(f"the schema nests deeper than {limits.max_depth} levels", param) from exc
        if size > limits.max_schema_bytes:
            raise _schema_error(f"the schema is {size} bytes; the limit is {limits.max_schema_bytes}", param,
                                "schema_too_large")
        depth, properties = _measure(schema, limits, param)
        if depth > limits.max_depth:
            raise _schema_error(f"the schema nests deeper than {limits.max_depth} levels", param, "schema_too_deep")
        if properties > limits.max_properties:
            raise _schema_error(
                f"the schema declares {properties} properties; the limit is {limits.max_properties}", param,
                "schema_too_large",
            )
        try:
            validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
            validator_class.check_schema(schema)
        except jsonschema.SchemaError as error:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            raise _schema_error(f"at {where}: {error.message}", param) from error
        except RecursionError as exc:
            raise _schema_error("the schema is too deeply nested", param, "schema_too_deep") from exc
        problem = _unresolvable_or_infinite(schema)
        if problem:
            raise _schema_error(problem, param)

    # ---- regex
    def _check_regex(self, pattern: str, param: str) -> None:
        if len(pattern) > self.limits.max_regex_length:
            raise InvalidRequestError(f"The regex is longer than {self.limits.max_regex_length} characters.",
                                      param=param, code="regex_too_large")
        try:
            parsed = sre_parse.parse(pattern)
        except (re.error, RecursionError, OverflowError) as exc:
            raise InvalidRequestError(f"Invalid regex: {exc}.", param=param, code="invalid_regex") from exc
        problem = _regex_hazard(parsed)
        if problem:
            raise InvalidRequestError(f"Regex refused: {problem}.", param=param, code="invalid_regex")

    # ---- time-bounded trial conversion
    async def _trial_compile(self, request: StructuredRequest, for_outlines: bool) -> None:
        """Convert the constraint once in a worker process, with a deadline.

        xgrammar's conversion is what vLLM runs while validating a request; a constraint that
        takes too long here would stall the engine's frontend, so it is refused. A conversion
        error is not final: another backend may still accept the constraint.
        """
        spec = request.constraint.model_dump(include={"json_schema", "regex", "grammar"})
        spec["for_outlines"] = for_outlines
        key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
        if key in self._passed:  # the same constraint again (e.g. every triage request)
            self._passed.move_to_end(key)
            return
        async with self._one_at_a_time:  # hostile requests cannot pile up work
            future = self._worker().submit(_convert_with_xgrammar, spec)
            try:
                outlines_regex = await asyncio.wait_for(asyncio.wrap_future(future), self.limits.compile_timeout_s)
            except asyncio.TimeoutError as exc:
                self._reset_pool()
                raise InvalidRequestError(
                    f"The constraint took longer than {self.limits.compile_timeout_s:g} s to compile; simplify it.",
                    param=request.param, code="constraint_too_complex",
                ) from exc
            except BrokenProcessPool:
                self._reset_pool()  # the worker crashed in native code; the backends will judge
                return
            except Exception:  # noqa: BLE001 - not final: another backend may accept it
                return
        if outlines_regex is not None:
            # outlines builds a full automaton from this regex: large bounded repeats (say a
            # minLength of a million) exhaust memory in the engine, so they are refused here.
            problem = _regex_hazard(sre_parse.parse(outlines_regex)) if len(outlines_regex) < 100_000 else "too long"
            if problem:
                raise InvalidRequestError(
                    f"The constraint is too large for the outlines backend ({problem}).",
                    param=request.param, code="constraint_too_complex",
                )
        self._passed[key] = None
        if len(self._passed) > self.limits.cache_entries:
            self._passed.popitem(last=False)

    def _worker(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: the service process runs vLLM threads that must not be forked.
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    async def warm_up(self) -> None:
        """Start the worker process ahead of the first structured request."""
        await asyncio.wrap_future(self._worker().submit(_convert_with_xgrammar, {"regex": "a"}))

    def _reset_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            for process in list(getattr(pool, "_processes", {}).values()):
                process.kill()
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _convert_with_xgrammar(spec: dict[str, Any]) -> str | None:
    """Runs in the guard's worker process. Returns the regex outlines would build, if asked."""
    import xgrammar

    if spec.get("json_schema") is not None:
        if spec.get("for_outlines"):
            from outlines_core import json_schema as outlines_json_schema

            return outlines_json_schema.build_regex_from_schema(json.dumps(spec["json_schema"]))
        xgrammar.Grammar.from_json_schema(json.dumps(spec["json_schema"]), any_whitespace=False)
    elif spec.get("regex") is not None:
        xgrammar.Grammar.from_regex(spec["regex"])
    elif spec.get("grammar") is not None:
        xgrammar.Grammar.from_ebnf(spec["grammar"])
    return None


def _schema_error(problem: str, param: str, code: str = "invalid_json_schema") -> InvalidRequestError:
    return InvalidRequestError(f"Invalid JSON schema: {problem}.", param=param, code=code)


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
                raise _schema_error(
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
        if ref in refs:
            return refs[ref]
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
        refs[ref] = node
        return node

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


def _regex_hazard(parsed: Any) -> str | None:
    """Nested unbounded repeats (e.g. `(a+)+`), huge counts, backreferences and lookarounds are
    refused: they explode the automaton a backend builds, or are not regular at all."""
    for op, value in parsed:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT"):
            _, high, body = value
            if high == MAXREPEAT and _has_unbounded_repeat(body):
                return "nested unbounded repetition such as (a+)+ can take exponential time"
            if high != MAXREPEAT and high > 1000:
                return f"a repeat count of {high} is too large (at most 1000)"
            children = [body]
        elif name == "SUBPATTERN":
            children = [value[-1]]
        elif name == "BRANCH":
            children = list(value[1])
        elif name in ("GROUPREF", "GROUPREF_EXISTS"):
            return "backreferences are not regular"
        elif name in ("ASSERT", "ASSERT_NOT"):
            return "lookaround assertions are not supported"
        else:
            continue
        for child in children:
            problem = _regex_hazard(child)
            if problem:
                return problem
    return None


def _has_unbounded_repeat(parsed: Any) -> bool:
    for op, value in parsed:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT"):
            if value[1] == MAXREPEAT or _has_unbounded_repeat(value[2]):
                return True
        elif name == "SUBPATTERN" and _has_unbounded_repeat(value[-1]):
            return True
        elif name == "BRANCH" and any(_has_unbounded_repeat(b) for b in value[1]):
            return True
    return False


# ------------------------------------------------------------- relaxation
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


# --------------------------------------------------------------- validation
def validate_output(request: StructuredRequest, text: str, finish_reason: str | None) -> ValidationResult:
    """Check one decoded reply against its constraint."""
    if finish_reason == "length":
        return "truncated"
    kind = request.kind
    if kind in ("json_schema", "json_object"):
        try:
            value = json.loads(text)
        except ValueError:
            return "invalid"
        if kind == "json_object":
            return "valid" if isinstance(value, dict) else "invalid"
        validator_class = jsonschema.validators.validator_for(request.schema_ or {}, default=jsonschema.Draft202012Validator)
        validator = validator_class(request.schema_ or {}, format_checker=validator_class.FORMAT_CHECKER)
        try:
            return "valid" if validator.is_valid(value) else "invalid"
        except (jsonschema.exceptions.RefResolutionError, RecursionError):  # type: ignore[attr-defined]
            return "invalid"
    if kind == "choice":
        return "valid" if text in (request.constraint.choice or []) else "invalid"
    if kind == "regex":
        try:
            return "valid" if regex_engine.fullmatch(request.constraint.regex or "", text, timeout=1.0) else "invalid"
        except (regex_engine.error, TimeoutError):
            return "unchecked"
    return "unchecked"  # EBNF grammars: the engine enforces them; there is no independent checker here
