"""Triage edges: a request during engine start-up, and batches that share the service."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from service.errors import EngineNotReadyError
from service.generation import GenerationLimits, GenerationRequest, GenerationService, PromptMessage
from service.observability import Metrics
from service.tasks.triage import TriageResponse, TriageService, TriageThresholds
from tests.support.waiting import eventually
from tests.unit.tasks.fakes import BASE_MODEL, FakeEngine, FakeGeneration, ticket

pytestmark = pytest.mark.anyio



# ------------------------------------------------------------- start-up: 503
async def test_triage_during_startup_is_the_same_503_as_chat_without_touching_the_tokenizer() -> None:
    engine = FakeEngine(ready=False)  # its tokenizer raises, as the real one before start-up
    metrics = Metrics(CollectorRegistry())
    generation = GenerationService(engine, router=None, metrics=metrics,  # type: ignore[arg-type]
                                   limits=GenerationLimits(max_model_len=4096, max_tokens_limit=2048, max_n=4))
    with pytest.raises(EngineNotReadyError) as chat:
        await generation.prepare(GenerationRequest(model=BASE_MODEL,
                                                   messages=[PromptMessage(role="user", content="hi")]))

    triage = TriageService(generation, BASE_MODEL)
    with pytest.raises(EngineNotReadyError) as single:
        await triage.triage(ticket("A"))
    with pytest.raises(EngineNotReadyError) as batch:
        await triage.triage_batch([ticket("A", 0), ticket("A", 1)])

    assert engine.rendered == 0
    for error in (single.value, batch.value):
        assert (error.status, error.code, error.retry_after, error.message) == (
            chat.value.status, chat.value.code, chat.value.retry_after, chat.value.message)
        assert error.status == 503 and error.retry_after
    # Counted as chat's refusal is (one for the ticket, one for the whole batch).
    assert metrics.registry.get_sample_value("loragate_rejected_requests_total", {"reason": "engine_not_ready"}) == 3


async def test_triage_during_startup_with_a_fake_generation() -> None:
    generation = FakeGeneration(ready=False)
    with pytest.raises(EngineNotReadyError):
        await TriageService(generation, BASE_MODEL).triage(ticket("A"))  # type: ignore[arg-type]
    assert generation.engine.rendered == 0 and not generation.prepared
    assert generation.refusals == ["engine_not_ready"]


async def test_triage_when_ready() -> None:
    generation = FakeGeneration()
    result = await TriageService(generation, BASE_MODEL).triage(ticket("A"))  # type: ignore[arg-type]
    assert result.triage.category == "billing" and result.meta.attempts == 1
    assert generation.prepared[0].released and not generation.refusals


async def test_triage_meta_names_the_prompt_tokens_read_from_the_prefix_cache() -> None:
    generation = FakeGeneration()
    service = TriageService(generation, BASE_MODEL)  # type: ignore[arg-type]
    assert (await service.triage(ticket("A"))).meta.cached_prompt_tokens is None  # not reported
    generation.cached_prompt_tokens = 288  # the shared instructions of the triage prompt
    result = await service.triage(ticket("A"))
    assert result.meta.cached_prompt_tokens == 288
    assert result.model_dump(mode="json")["meta"]["cached_prompt_tokens"] == 288


# ------------------------------------------------------ batch concurrency
async def test_each_batch_has_its_own_concurrency_limit() -> None:
    generation = FakeGeneration()
    generation.gates["A"] = asyncio.Event()  # batch A's engine runs hold until released
    triage = TriageService(generation, BASE_MODEL, batch_concurrency=2)  # type: ignore[arg-type]

    first = asyncio.create_task(triage.triage_batch([ticket("A", i) for i in range(6)]))
    await eventually(lambda: generation.running["A"] == 2)
    # The second batch runs (and finishes) while the first still holds all of its slots.
    second = await asyncio.wait_for(triage.triage_batch([ticket("B", i) for i in range(5)]), timeout=5)
    assert not first.done()
    assert all(isinstance(r, TriageResponse) for r in second)
    assert generation.finished["B"] == 5 and generation.finished["A"] == 0

    generation.gates["A"].set()
    results = await asyncio.wait_for(first, timeout=5)
    assert all(isinstance(r, TriageResponse) for r in results)
    assert generation.peak == {"A": 2, "B": 2}  # each within its limit, and using all of it


# ------------------------------------------------------- one tokenisation
async def test_a_ticket_that_fits_is_tokenised_once_and_sent_as_token_ids() -> None:
    generation = FakeGeneration()
    result = await TriageService(generation, BASE_MODEL).triage(ticket("A"))  # type: ignore[arg-type]
    assert generation.engine.rendered == 1 and not result.meta.input_truncated
    assert "Ticket 0 of batch A." in generation.prepared[0].prompt


async def test_an_over_long_body_is_cut_to_fit_keeping_its_start_and_end() -> None:
    generation = FakeGeneration()  # one token per character, context 4096
    body = "START " + "x" * 6000 + " END"
    long_ticket = ticket("A").model_copy(update={"body": body})
    result = await TriageService(generation, BASE_MODEL).triage(long_ticket, max_tokens=256)  # type: ignore[arg-type]
    prompt = generation.prepared[0].prompt
    assert result.meta.input_truncated and generation.engine.rendered == 2
    assert len(prompt) <= 4096 - 2 * 256  # prompt and the retry's doubled budget fit the context
    assert "START " in prompt and " END" in prompt and "\n[...]\n" in prompt
    assert len(prompt) > 4096 - 2 * 256 - 100  # cut by what was over, not by half


# ------------------------------------------------- probabilities and policy
async def test_a_reply_carries_label_probabilities_and_the_policy_it_followed() -> None:
    generation = FakeGeneration()
    service = TriageService(generation, BASE_MODEL)  # type: ignore[arg-type]
    result = await service.triage(ticket("A"))
    meta = result.meta
    assert meta.probabilities is not None and meta.probabilities.category["billing"] == 1.0
    assert sum(meta.probabilities.priority.values()) == pytest.approx(1.0)
    assert meta.confidence.category == 1.0 and meta.needs_review is False and meta.review_reasons == []
    assert meta.policy == service.policy
    assert generation.prepared[0].request.sampling.logprobs == 20

    flagged = await service.triage(ticket("A"), policy=TriageThresholds(review_threshold=1.0, urgent_threshold=0.0))
    # P(urgent) = 0 >= 0: escalated; its confidence 0 is below any priority review threshold set
    assert flagged.triage.priority == "urgent" and flagged.meta.policy.urgent_threshold == 0.0

    bare = await service.triage(ticket("A"), probabilities=False)
    assert bare.meta.probabilities is None and bare.meta.needs_review is None and bare.meta.policy is None
    assert generation.prepared[-1].request.sampling.logprobs is None


# ------------------------------------------------------------- shadow: paired with the client's reply
async def test_a_shadow_decision_is_recorded_with_the_client_replys_variant_and_labels() -> None:
    generation = FakeGeneration()
    generation.mirror_to = "candidate"
    response = await TriageService(generation, BASE_MODEL).triage(ticket("A"))  # type: ignore[arg-type]
    await asyncio.gather(*generation.shadows)
    labels = {"category": response.triage.category, "priority": response.triage.priority}
    assert [(o[0], o[1]) for o in generation.outcomes] == [(labels, False), (labels, True)]
    assert generation.pairs == [None, (BASE_MODEL, labels)]  # the shadow's, compared with the client's


async def test_a_shadow_whose_client_reply_failed_is_recorded_without_a_pair() -> None:
    generation = FakeGeneration()
    generation.mirror_to = "candidate"
    service = TriageService(generation, BASE_MODEL)  # type: ignore[arg-type]
    real = service._decided
    calls = 0

    async def client_reply_invalid(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        nonlocal calls
        calls += 1
        return None if calls == 1 else await real(*args, **kwargs)

    service._decided = client_reply_invalid  # type: ignore[method-assign]
    with pytest.raises(Exception, match="schema-valid triage"):
        await service.triage(ticket("A"))
    await asyncio.wait_for(asyncio.gather(*generation.shadows), 5)  # never waits forever on the client's reply
    assert [o[1] for o in generation.outcomes] == [True] and generation.pairs == [None]
