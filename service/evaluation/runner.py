"""Orchestration of `loragate eval`: every example through every target's HTTP API, in both
modes (triage) or as a plain chat (voice), then the summaries.

Targets run one after another (and constrained before unconstrained), so one target's latency is
never measured while another target's requests share the engine.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from service.evaluation import voice
from service.evaluation.calibration import CALIBRATION_DEFINITIONS
from service.evaluation.client import CallResult, EvalClient
from service.evaluation.dataset import LabelledTicket, VoiceExample, load_tickets, load_voice
from service.evaluation.results import (
    DEFINITIONS,
    EvalReport,
    TRIAGE_MODES,
    ModeResult,
    Outcome,
    TriageMode,
    VoiceOutcome,
    summarize_triage,
    summarize_voice,
)
from service.evaluation.thresholds import summarize_calibration
from service.model_prep import sha256_file
from service.tasks.triage import REPETITION_PENALTY, TicketTriage, TriagePrompt, parse_triage_reply

BASE = "base"
TRIAGE_MAX_TOKENS = 256
VOICE_MAX_TOKENS = 200
OUTPUT_CHARS = 2000  # per-example output kept in report.json
# meta fields of a triage reply kept per outcome (issue 26), validated as Outcome declares them
REVIEW_FIELDS = {name: TypeAdapter(Outcome.model_fields[name].annotation)
                 for name in ("probabilities", "confidence", "needs_review", "review_reasons", "policy")}

T = TypeVar("T")


class EvalConfig(BaseModel):
    dataset: Path
    targets: list[str]
    url: str
    limit: int | None = None
    concurrency: int = 4
    max_tokens: int | None = None  # None: 256 (unconstrained triage) or 200 (voice)
    voice: bool = False
    modes: list[TriageMode] = Field(default_factory=lambda: list(TRIAGE_MODES), min_length=1)
    api_key: str | None = None
    timeout_s: float = 300.0
    ready_wait_s: float = 600.0  # how long a service that is still starting may take to be ready
    priority_review_threshold: float = Field(0.0, ge=0, le=1)  # of the thresholds the calibration proposes
    command: str = "loragate eval"


def default_out_dir() -> Path:
    return Path("eval-results") / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def log(message: str) -> None:
    print(f"[eval] {message}", file=sys.stderr, flush=True)


async def run_eval(config: EvalConfig, transport: httpx.AsyncBaseTransport | None = None) -> EvalReport:
    started, date = time.monotonic(), datetime.now(timezone.utc).isoformat(timespec="seconds")
    examples = load_voice(config.dataset, config.limit) if config.voice else load_tickets(config.dataset, config.limit)
    async with EvalClient(config.url, config.api_key, config.timeout_s, transport) as client:
        await client.wait_until_ready(config.ready_wait_s, log)
        base_model = await client.base_model()
        targets = list(dict.fromkeys(config.targets))
        if config.voice and BASE not in targets and base_model not in targets:
            # Voice measures are reported relative to the base model, so it is always measured.
            log(f"voice: adding target {BASE} ({base_model}) as the reference")
            targets.insert(0, BASE)
        log(f"{len(examples)} examples from {config.dataset}; base model {base_model}; targets {', '.join(targets)}")
        resolved = [(target, base_model if target == BASE else target) for target in targets]
        style = voice.load_brand_style() if config.voice else None
        if style is not None:
            log(f"voice: brand style from {style.source}")
            results = await _run_voice(client, config, examples, resolved, base_model, style)  # type: ignore[arg-type]
            max_tokens = config.max_tokens or VOICE_MAX_TOKENS
        else:
            results = await _run_triage(client, config, examples, resolved)  # type: ignore[arg-type]
            max_tokens = config.max_tokens or TRIAGE_MAX_TOKENS
    return EvalReport(
        kind="voice" if config.voice else "triage", command=config.command,
        date=date, url=config.url,
        dataset=str(config.dataset), dataset_sha256=sha256_file(config.dataset), n=len(examples),
        base_model=base_model, max_tokens=max_tokens, concurrency=config.concurrency,
        style_source=style.source if style else None,
        definitions=_definitions(config, results), results=results,
        duration_s=round(time.monotonic() - started, 1),
    )


async def _run_triage(client: EvalClient, config: EvalConfig, tickets: Sequence[LabelledTicket],
                      targets: Sequence[tuple[str, str]]) -> list[ModeResult]:
    prompt = TriagePrompt.load()
    max_tokens = config.max_tokens or TRIAGE_MAX_TOKENS
    results: list[ModeResult] = []
    for target, model in targets:
        calls = {
            "constrained": lambda t, model=model: _triage_constrained(client, t, model),
            "unconstrained": lambda t, model=model: _triage_unconstrained(client, prompt, t, model, max_tokens),
        }
        for mode in config.modes:
            call = calls[mode]
            outcomes = await _gather(tickets, call, config.concurrency, f"target {target} {mode}")
            calibration = summarize_calibration(outcomes, config.priority_review_threshold) \
                if mode == "constrained" else None
            results.append(ModeResult(target=target, model=model, mode=mode,  # type: ignore[arg-type]
                                      metrics=summarize_triage(outcomes), outcomes=outcomes, calibration=calibration))
    return results


def _definitions(config: EvalConfig, results: Sequence[ModeResult]) -> dict[str, str]:
    if config.voice:
        return voice.AGGREGATES
    return DEFINITIONS | (CALIBRATION_DEFINITIONS if any(r.calibration for r in results) else {})


async def _run_voice(client: EvalClient, config: EvalConfig, examples: Sequence[VoiceExample],
                     targets: Sequence[tuple[str, str]], base_model: str, style: voice.BrandStyle) -> list[ModeResult]:
    max_tokens = config.max_tokens or VOICE_MAX_TOKENS
    runs: list[tuple[str, str, list[VoiceOutcome], dict[str, float | None]]] = []
    for target, model in targets:
        outcomes = await _gather(examples, lambda e, model=model: _voice_one(client, e, model, max_tokens, style),
                                 config.concurrency, f"target {target} voice")
        scored = [voice.VoiceScores.model_validate(o.scores) for o in outcomes if o.scores is not None]
        runs.append((target, model, outcomes, voice.aggregate(scored)))
    base_measures = next((m for target, model, _, m in runs if target == BASE or model == base_model), None)
    return [
        ModeResult(target=target, model=model, mode="voice", outcomes=outcomes,
                   metrics=summarize_voice(outcomes, measures,
                                           voice.deltas(measures, base_measures) if base_measures else None))
        for target, model, outcomes, measures in runs
    ]


async def _gather(items: Sequence[T], call: Callable[[T], Awaitable[Any]], concurrency: int, label: str) -> list[Any]:
    """Run `call` on every item, at most `concurrency` at a time, results in input order."""
    slots = asyncio.Semaphore(max(1, concurrency))
    done = errors = 0
    started = time.monotonic()
    every = max(1, len(items) // 20)  # about 20 progress lines per target and mode

    async def guarded(item: T) -> Any:
        nonlocal done, errors
        async with slots:
            outcome = await call(item)
        done += 1
        errors += bool(getattr(outcome, "error", None))
        if done % every == 0 or done == len(items):
            log(f"{label} {done}/{len(items)} ({errors} errors, {time.monotonic() - started:.1f} s)")
        return outcome

    return list(await asyncio.gather(*(guarded(item) for item in items)))


async def _triage_constrained(client: EvalClient, ticket: LabelledTicket, model: str) -> Outcome:
    result = await client.triage(ticket.to_ticket().model_dump(exclude_none=True), model)
    return _constrained_outcome(ticket, result)


async def _triage_unconstrained(client: EvalClient, prompt: TriagePrompt, ticket: LabelledTicket, model: str,
                                max_tokens: int) -> Outcome:
    # Exactly the endpoint's prompt, without response_format: what the model does unconstrained.
    messages = [{"role": m.role, "content": m.content} for m in prompt.messages(ticket.to_ticket())]
    # The triage endpoint's sampling, without its constraint: the two modes differ only there.
    return _unconstrained_outcome(ticket, await client.chat(messages, model, max_tokens, REPETITION_PENALTY))


async def _voice_one(client: EvalClient, example: VoiceExample, model: str, max_tokens: int,
                     style: voice.BrandStyle) -> VoiceOutcome:
    result = await client.chat([{"role": "user", "content": example.message}], model, max_tokens)
    reply, prompt_tokens, completion_tokens, error = _chat_reply(result)
    scores = voice.score_reply(example.message, reply, style, example.reply) if reply is not None else None
    return VoiceOutcome(id=example.id, status=result.status, error=error, latency_s=result.latency_s,
                        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, reply=reply,
                        scores=scores.model_dump() if scores else None)


def _constrained_outcome(ticket: LabelledTicket, result: CallResult) -> Outcome:
    triage, meta = None, {}
    if result.status == 200 and isinstance(result.body, dict):
        meta = result.body.get("meta") or {}
        triage = _validate(result.body.get("triage"))
    # A 502 is the endpoint saying "no schema-valid output": a wrong answer, not an error.
    error = None if result.status in (200, 502) else result.error
    outcome = _outcome(ticket, result, parsed=result.status == 200, triage=triage, error=error,
                       prompt_tokens=meta.get("prompt_tokens"), completion_tokens=meta.get("completion_tokens"),
                       output=json.dumps(result.body.get("triage")) if triage else result.error)
    return outcome.model_copy(update=_review_fields(meta)) if isinstance(meta, dict) else outcome


def _review_fields(meta: dict[str, Any]) -> dict[str, Any]:
    """meta.probabilities, confidence, needs_review, review_reasons and policy, each kept only
    when it has the documented shape (a malformed one reads as absent, never as a wrong number)."""
    fields: dict[str, Any] = {}
    for name in REVIEW_FIELDS:
        value = meta.get(name)
        try:
            fields[name] = REVIEW_FIELDS[name].validate_python(value)
        except ValidationError:
            fields[name] = None
    return fields


def _unconstrained_outcome(ticket: LabelledTicket, result: CallResult) -> Outcome:
    reply, prompt_tokens, completion_tokens, error = _chat_reply(result)
    parsed, triage = parse_triage_reply(reply) if reply is not None else (False, None)
    return _outcome(ticket, result, parsed=parsed, triage=triage,
                    error=error, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                    output=reply if reply is not None else error)


def _outcome(ticket: LabelledTicket, result: CallResult, *, parsed: bool, triage: TicketTriage | None,
             error: str | None, prompt_tokens: Any, completion_tokens: Any, output: str | None) -> Outcome:
    served = result.headers.get("x-loragate-model")
    variant = result.headers.get("x-loragate-variant")
    if served and variant and variant != "none":
        served = f"{served} ({result.headers.get('x-loragate-route')}/{variant})"
    return Outcome(
        id=ticket.id, true_category=ticket.category, true_priority=ticket.priority, status=result.status,
        parsed_json=parsed, schema_valid=triage is not None,
        category=triage.category if triage else None, priority=triage.priority if triage else None,
        error=error, latency_s=result.latency_s,
        prompt_tokens=prompt_tokens if isinstance(prompt_tokens, int) else None,
        completion_tokens=completion_tokens if isinstance(completion_tokens, int) else None,
        served_by=served, output=output[:OUTPUT_CHARS] if output else output,
    )


def _validate(value: Any) -> TicketTriage | None:
    if not isinstance(value, dict):
        return None
    try:
        return TicketTriage.model_validate(value)
    except ValidationError:
        return None


def _chat_reply(result: CallResult) -> tuple[str | None, int | None, int | None, str | None]:
    """(reply text, prompt tokens, completion tokens, error) of a chat completion; text None on failure."""
    if result.status != 200 or not isinstance(result.body, dict):
        return None, None, None, result.error or f"{result.status} reply is not JSON"
    usage = result.body.get("usage") or {}
    try:
        text = result.body["choices"][0]["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        return None, None, None, "200 reply without choices[0].message.content"
    return text, usage.get("prompt_tokens"), usage.get("completion_tokens"), None
