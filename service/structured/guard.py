"""The constraint guard: refuse constraints that could hurt the engine, before they reach it.

Size, depth, enum and property limits, a schema that cannot produce a finite value, regexes with
nested unbounded repeats, and a time-bounded trial conversion in a separate process (so a
pathological schema costs that process, not the event loop or the engine).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import multiprocessing
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from service.errors import InvalidRequestError
from service.structured.regex_analysis import RegexSyntaxError, regex_hazard
from service.structured.schema_checks import check_schema
from service.structured.types import StructuredLimits, StructuredRequest


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
            check_schema(request.schema_ or {}, self.limits, request.param)
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

    # ---- regex
    def _check_regex(self, pattern: str, param: str) -> None:
        if len(pattern) > self.limits.max_regex_length:
            raise InvalidRequestError(f"The regex is longer than {self.limits.max_regex_length} characters.",
                                      param=param, code="regex_too_large")
        try:
            problem = regex_hazard(pattern)
        except RegexSyntaxError as exc:
            raise InvalidRequestError(f"Invalid regex: {exc}.", param=param, code="invalid_regex") from exc
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
            problem = regex_hazard(outlines_regex) if len(outlines_regex) < 100_000 else "too long"
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
