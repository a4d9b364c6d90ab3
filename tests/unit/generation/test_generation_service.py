"""The generation service's attempts, verdicts and accounting, with a scripted engine (fast).

The real engine is exercised in tests/integration; these pin the bookkeeping rules: usage and
request counts describe what the client received, extra attempts are their own metric, and
every failure is counted with the status the one failure table gives it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from prometheus_client import CollectorRegistry

from service.engine import EngineState, GenerationDelta, GenerationUpdate, SamplingOptions
from service.errors import UpstreamGenerationError
from service.generation import GenerationLimits, GenerationRequest, GenerationResult, GenerationService, PromptMessage
from service.observability.metrics import Metrics
from service.routing import ModelRouter, ServingTarget
from service.structured import StructuredConstraint, StructuredPolicy, StructuredRequest

MODEL = "base"
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
pytestmark = pytest.mark.anyio
Script = Callable[[SamplingOptions, int], list[tuple[str, int, str | None]]]



class ScriptedEngine:
    """Replies with (text, tokens, finish_reason) steps chosen by `script(sampling, call_number)`."""

    state = EngineState.READY
    is_ready = True
    vocab_size = 100

    def __init__(self, script: Script, fail: BaseException | None = None) -> None:
        self.script, self.fail, self.calls = script, fail, []

    def render_chat(self, messages: list[dict[str, str]]) -> list[int]:
        return [1, 2, 3]

    def tokenize(self, text: str) -> list[int]:
        return [1] * len(text.split())

    async def generate(self, prompt_ids, sampling: SamplingOptions, adapter=None, request_id=None,
                       priority: int = 0, cache_salt: str | None = None) -> AsyncIterator[GenerationUpdate]:
        self.calls.append(sampling)
        steps = self.script(sampling, len(self.calls))
        for i, (text, tokens, finish) in enumerate(steps):
            if self.fail is not None and i == 1:
                raise self.fail
            await asyncio.sleep(0)
            yield GenerationUpdate(deltas=[GenerationDelta(index=0, text=text, token_count=tokens, finish_reason=finish)],
                                   prompt_tokens=len(prompt_ids))


def service(engine: ScriptedEngine) -> tuple[GenerationService, Metrics]:
    metrics = Metrics(CollectorRegistry())
    limits = GenerationLimits(max_model_len=512, max_tokens_limit=256, max_n=4)
    return GenerationService(engine, ModelRouter(MODEL), metrics, limits,  # type: ignore[arg-type]
                             policy=StructuredPolicy(fallback_backends=["guidance"])), metrics


def structured_request(max_tokens: int = 10, strict: bool = False, **extra) -> GenerationRequest:
    return GenerationRequest(
        model=MODEL, messages=[PromptMessage(role="user", content="hi")], sampling=SamplingOptions(max_tokens=max_tokens),
        structured=StructuredRequest(constraint=StructuredConstraint(json_schema=SCHEMA), kind="json_schema",
                                     schema_=SCHEMA, strict=strict), **extra)


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, {"base_model": MODEL, "model": MODEL, "route": "none",
                                                    "variant": "none", "route_version": "none", **labels}) or 0.0


async def test_truncated_reply_is_retried_once_with_the_reserved_budget_and_counted_as_one_request() -> None:
    def script(sampling: SamplingOptions, call: int):
        if sampling.max_tokens < 20:
            return [('{"a": 12', 10, "length")]
        return [('{"a": 12', 10, None), ("3}", 2, "stop")]

    engine = ScriptedEngine(script)
    generation, metrics = service(engine)
    result = await run(generation, structured_request(max_tokens=10, retry_truncated_max_tokens=20))
    assert [c.max_tokens for c in engine.calls] == [10, 20]
    assert result.structured_output == "valid" and result.attempts == 2
    assert result.completion_tokens == 12  # the discarded attempt's 10 tokens are not usage
    assert value(metrics, "loragate_requests_total", endpoint="chat", status="200") == 1
    assert value(metrics, "loragate_completion_tokens_total") == 12
    assert value(metrics, "loragate_generation_retries_total", reason="truncated") == 1
    assert value(metrics, "loragate_discarded_completion_tokens_total") == 10


async def test_invalid_output_falls_back_to_the_next_backend_as_a_retry_not_a_request() -> None:
    def script(sampling: SamplingOptions, call: int):
        return [('{"b": 1}', 5, "stop")] if sampling.structured.backend == "xgrammar" else [('{"a": 1}', 4, "stop")]

    generation, metrics = service(ScriptedEngine(script))
    result = await run(generation, structured_request())
    assert result.structured_output == "valid" and result.structured_backend == "guidance"
    assert result.completion_tokens == 4
    assert value(metrics, "loragate_requests_total", endpoint="chat", status="200") == 1
    assert value(metrics, "loragate_generation_retries_total", reason="invalid_output") == 1
    assert value(metrics, "loragate_completion_tokens_total") == 4


async def test_a_strict_reply_no_backend_gets_right_is_a_502_that_says_why() -> None:
    def script(sampling: SamplingOptions, call: int):
        return [('{"b": 1}', 5, "stop")] if sampling.structured.backend == "xgrammar" else [('{"a": "one"}', 4, "stop")]

    generation, metrics = service(ScriptedEngine(script))
    with pytest.raises(UpstreamGenerationError) as refused:
        await run(generation, structured_request(strict=True))
    assert "xgrammar: the output did not validate against the schema ('a' is a required property at $)" in refused.value.message
    assert "guidance: the output did not validate against the schema ('one' is not of type 'integer' at $.a)" \
        in refused.value.message
    assert value(metrics, "loragate_requests_total", endpoint="chat", status="502") == 1


@pytest.mark.parametrize(("failure", "status"), [(RuntimeError("engine bug"), "500"), (asyncio.CancelledError(), "499")])
async def test_an_unexpected_engine_exception_is_a_500_and_a_client_gone_a_499(failure, status) -> None:
    engine = ScriptedEngine(lambda s, c: [("a", 1, None), ("b", 1, "stop")], fail=failure)
    generation, metrics = service(engine)
    with pytest.raises(type(failure)):
        await run(generation, GenerationRequest(model=MODEL, prompt="hi", endpoint="completions"))
    assert value(metrics, "loragate_requests_total", endpoint="completions", status=status) == 1


async def run(generation: GenerationService, request: GenerationRequest) -> GenerationResult:
    async with generation.session(request) as session:
        return await session.run()


async def collect(generation: GenerationService, request: GenerationRequest) -> tuple[list[str], object]:
    async with generation.session(request) as session:
        texts = []
        async for deltas in session.stream():
            texts += [d.text for d in deltas]
    return texts, session.structured_output


async def test_a_structured_stream_ends_with_its_verdict() -> None:
    engine = ScriptedEngine(lambda s, c: [('{"a"', 2, None), (": 1}", 2, "stop")])
    generation, metrics = service(engine)
    texts, verdict = await collect(generation, structured_request())
    assert "".join(texts) == '{"a": 1}' and verdict == "valid"
    assert value(metrics, "loragate_structured_output_total", result="valid") == 1


async def test_a_strict_stream_that_fails_validation_ends_with_an_error_instead_of_its_last_chunk() -> None:
    engine = ScriptedEngine(lambda s, c: [('{"b"', 2, None), (": 1}", 2, "stop")])
    generation, metrics = service(engine)
    seen: list[str] = []
    with pytest.raises(UpstreamGenerationError):
        async with generation.session(structured_request(strict=True)) as session:
            async for deltas in session.stream():
                seen += [d.text for d in deltas]
    assert seen == ['{"b"'] and session.structured_output == "invalid"
    assert value(metrics, "loragate_requests_total", endpoint="chat", status="502") == 1


async def test_a_non_strict_invalid_stream_is_flagged_not_refused() -> None:
    engine = ScriptedEngine(lambda s, c: [('{"b"', 2, None), (": 1}", 2, "stop")])
    texts, verdict = await collect(service(engine)[0], structured_request())
    assert "".join(texts) == '{"b": 1}' and verdict == "invalid"


# ------------------------------------------------------------ the session
class LeaseLog:
    """Leases that record their release (once each, as real leases)."""

    def __init__(self) -> None:
        self.released: list[str] = []

    def lease(self, name: str) -> object:
        log = self

        class _Lease:
            done = False

            def release(self) -> None:
                if not self.done:
                    self.done = True
                    log.released.append(name)

        return _Lease()


class MirroringRouter(ModelRouter):
    """A router whose every request has a shadow variant (as a route with `shadow`)."""

    def __init__(self, leases: LeaseLog) -> None:
        super().__init__(MODEL)
        self.leases = leases

    def resolve(self, name: str, route_key: str | None = None) -> ServingTarget:
        return ServingTarget(base_model=MODEL, model=MODEL, route="r", variant="main")

    def shadow(self, target: ServingTarget, route_key: str | None = None) -> ServingTarget | None:
        return ServingTarget(base_model=MODEL, model=MODEL, route="r", variant="mirror")

    def lease(self, target: ServingTarget) -> object:  # type: ignore[override]
        return self.leases.lease(target.variant)


def mirrored_service(engine: ScriptedEngine) -> tuple[GenerationService, LeaseLog, Metrics]:
    leases, metrics = LeaseLog(), Metrics(CollectorRegistry())
    limits = GenerationLimits(max_model_len=512, max_tokens_limit=256, max_n=4)
    return GenerationService(engine, MirroringRouter(leases), metrics, limits), leases, metrics  # type: ignore[arg-type]


@pytest.mark.parametrize("streamed", [False, True])
async def test_the_session_releases_its_lease_and_then_runs_the_shadow_which_releases_its_own(streamed) -> None:
    engine = ScriptedEngine(lambda s, c: [("a", 1, None), ("b", 1, "stop")])
    generation, leases, metrics = mirrored_service(engine)
    request = GenerationRequest(model=MODEL, prompt="hi", endpoint="completions")
    async with generation.session(request) as session:
        if streamed:
            [d async for d in session.stream()]
        else:
            await session.run()
        assert leases.released == [] and len(engine.calls) == 1  # the shadow waits for the client's reply
    assert leases.released == ["main"]
    await asyncio.wait_for(asyncio.gather(*generation._background), timeout=5)
    assert leases.released == ["main", "mirror"] and len(engine.calls) == 2
    assert engine.calls[1] == engine.calls[0]  # the mirror samples as the client's request did
    assert metrics.registry.get_sample_value(
        "loragate_shadow_requests_total", {"route": "r", "variant": "mirror", "status": "200"}) == 1


async def test_a_session_that_never_ran_releases_both_leases_and_mirrors_nothing() -> None:
    engine = ScriptedEngine(lambda s, c: [("a", 1, "stop")])
    generation, leases, _ = mirrored_service(engine)
    async with generation.session(GenerationRequest(model=MODEL, prompt="hi", endpoint="completions")):
        pass
    assert sorted(leases.released) == ["main", "mirror"] and not generation._background and not engine.calls


async def test_a_failed_request_still_releases_its_lease() -> None:
    engine = ScriptedEngine(lambda s, c: [("a", 1, None), ("b", 1, "stop")], fail=RuntimeError("engine bug"))
    generation, leases, _ = mirrored_service(engine)
    with pytest.raises(RuntimeError):
        async with generation.session(GenerationRequest(model=MODEL, prompt="hi", endpoint="completions")) as s:
            await s.run()
    assert "main" in leases.released


async def test_a_structured_stream_still_wholly_held_falls_back_like_a_reply_that_is_not_streamed() -> None:
    # One rule for both: an attempt may be replaced while nothing of it has reached the client.
    def script(sampling: SamplingOptions, call: int):
        return [('{"b": 1}', 5, "stop")] if sampling.structured.backend == "xgrammar" else [('{"a": 1}', 4, "stop")]

    generation, metrics = service(ScriptedEngine(script))
    texts, verdict = await collect(generation, structured_request())
    assert texts == ['{"a": 1}'] and verdict == "valid"
    assert value(metrics, "loragate_generation_retries_total", reason="invalid_output") == 1
