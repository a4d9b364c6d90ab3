"""The guard's trial compiler, faked: a conversion that records its calls and can be held or
synchronised, and requests to check."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from service.engine.types import StructuredConstraint
from service.structured import StructuredRequest

WARM_SPEC = {"regex": "a"}  # what a worker converts when it starts


class FakeCompiler:
    """Regexes starting with `hold` wait until released; `pair` ones wait for each other (a barrier
    of two); a JSON schema converted for outlines gives a hazardous regex when it asks for one."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.executors = 0
        self.running = 0
        self.max_running = 0
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._pair = threading.Barrier(2, timeout=2)

    def __call__(self, spec: dict[str, Any]) -> str | None:
        if spec == WARM_SPEC:
            return None
        with self._lock:
            self.calls.append(spec)
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            regex = spec.get("regex") or ""
            if regex.startswith("hold"):
                self._release.wait(timeout=10)
            elif regex.startswith("pair"):
                self._pair.wait()
            schema = spec.get("json_schema") or {}
            if spec.get("for_outlines") and schema.get("x-outlines-regex"):
                return str(schema["x-outlines-regex"])
            return None
        finally:
            with self._lock:
                self.running -= 1

    def count(self, **match: Any) -> int:
        return sum(all(call.get(k) == v for k, v in match.items()) for call in self.calls)

    def release_all(self) -> None:
        self._release.set()

    async def until_running(self, n: int = 1) -> None:
        deadline = time.monotonic() + 3
        while self.running < n:
            assert time.monotonic() < deadline, "the fake compiler never started"
            await asyncio.sleep(0.01)


def regex_request(regex: str) -> StructuredRequest:
    return StructuredRequest(kind="regex", constraint=StructuredConstraint(regex=regex), param="structured_outputs")


def schema_request(schema: dict[str, Any]) -> StructuredRequest:
    return StructuredRequest(kind="json_schema", constraint=StructuredConstraint(json_schema=schema), schema_=schema)
