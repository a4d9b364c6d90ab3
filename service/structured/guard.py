"""The constraint guard: refuse constraints that could hurt the engine, before they reach it.

Size, depth, enum and property limits, a schema that cannot produce a finite value, regexes with
nested unbounded repeats (the request's own, or any a schema holds), and a time-bounded trial
conversion in a pool of worker processes (so a pathological schema costs a worker, not the event
loop or the engine). Verdicts of trial conversions, refusals included, are remembered.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from typing import Any

from service.errors import InvalidRequestError
from service.structured.regex_analysis import regex_hazard
from service.structured.schema_checks import check_regex, check_schema
from service.structured.types import StructuredLimits, StructuredRequest
from service.structured.workers import WorkerPool


# -------------------------------------------------------------------- guard
class StructuredGuard:
    """Refuses constraints that are invalid or too costly, before they reach the engine."""

    def __init__(self, limits: StructuredLimits) -> None:
        self.limits = limits
        self._pool = WorkerPool(limits.compile_workers, limits.compile_wait_s, limits.compile_max_waiting,
                                warm=_warm_worker)
        # LRUs of trial verdicts, by constraint hash: those that compiled in time, and the refusals
        # (message, code), so the same bad constraint is not converted again.
        self._passed: OrderedDict[str, None] = OrderedDict()
        self._refused: OrderedDict[str, tuple[str, str | None]] = OrderedDict()

    async def check(self, request: StructuredRequest, backends: list[str] | None = None) -> None:
        """Refuse the constraint (InvalidRequestError) unless it is safe to hand to `backends`;
        OverloadedError (503) when no worker is free to judge a constraint not judged before."""
        if request.kind == "json_schema":
            check_schema(request.schema_ or {}, self.limits, request.param)
        elif request.kind == "regex":
            check_regex(request.constraint.regex or "", self.limits, request.param)
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

    # ---- time-bounded trial conversion, remembered
    async def _trial_compile(self, request: StructuredRequest, for_outlines: bool) -> None:
        """Convert the constraint once in a worker process, with a deadline, unless its verdict is known."""
        spec = request.constraint.model_dump(include={"json_schema", "regex", "grammar"})
        spec["for_outlines"] = for_outlines
        key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
        if key in self._passed:  # the same constraint again (e.g. every triage request)
            self._passed.move_to_end(key)
            return
        if key in self._refused:
            self._refused.move_to_end(key)
            message, code = self._refused[key]
            raise InvalidRequestError(message, param=request.param, code=code)
        try:
            final = await self._judge(spec, request.param)
        except InvalidRequestError as exc:  # a verdict; an OverloadedError is not one
            self._remember(self._refused, key, (exc.message, exc.code))
            raise
        if final:
            self._remember(self._passed, key, None)

    async def _judge(self, spec: dict[str, Any], param: str) -> bool:
        """Refuse the constraint, or say whether its acceptance is final (False: the conversion failed
        or crashed, which is not final: another backend may still accept it, so it is tried again).

        xgrammar's conversion is what vLLM runs while validating a request; a constraint that
        takes too long here would stall the engine's frontend, so it is refused.
        """
        outcome = await self._pool.run(_convert_with_xgrammar, spec, self.limits.compile_timeout_s)
        if outcome.status == "timed_out":
            raise InvalidRequestError(
                f"The constraint took longer than {self.limits.compile_timeout_s:g} s to compile; simplify it.",
                param=param, code="constraint_too_complex",
            )
        if outcome.status != "done":
            return False  # crashed in native code, or raised: the backends will judge
        outlines_regex = outcome.value
        if outlines_regex is not None:
            # outlines builds a full automaton from this regex: large bounded repeats (say a
            # minLength of a million) exhaust memory in the engine, so they are refused here.
            problem = regex_hazard(outlines_regex) if len(outlines_regex) < 100_000 else "too long"
            if problem:
                raise InvalidRequestError(
                    f"The constraint is too large for the outlines backend ({problem}).",
                    param=param, code="constraint_too_complex",
                )
        return True

    def _remember(self, cache: OrderedDict[str, Any], key: str, value: Any) -> None:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > self.limits.cache_entries:
            cache.popitem(last=False)

    async def warm_up(self) -> None:
        """Start the worker processes ahead of the first structured request."""
        await self._pool.warm_up()

    def close(self) -> None:
        self._pool.close()


def _warm_worker() -> None:
    """Runs in a new worker process: load xgrammar and convert once."""
    _convert_with_xgrammar({"regex": "a"})


def _convert_with_xgrammar(spec: dict[str, Any]) -> str | None:
    """Runs in a worker process. Returns the regex outlines would build, if asked."""
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
