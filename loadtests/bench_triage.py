"""`loragate bench --only triage`: ticket triage with the shipped adapter, side by side with vLLM.

The same tickets (the triage validation set) go to loragate's `POST /v1/tickets/triage` with the
shipped `ticket-triage` adapter, and to vLLM's own server in loragate's layout with `--enable-lora`
serving the same adapter, as the chat completion a user would write for it: the same messages
(rendered by loragate's TriagePrompt), the same TicketTriage schema in `response_format` (strict),
the same sampling (greedy, no repetition penalty, the same token budget) and the same top-20
logprobs that loragate's label probabilities read. A third arm sends loragate the same tickets with
a fresh `cache_salt` each, so no request reuses another's cached prompt prefix: the difference to
the first arm is what the prefix cache buys the triage prompt (its ~300-token system prompt is
shared by every ticket).

Figures per arm: tickets per minute (schema-valid replies only), latency p50/p95, the share of
schema-valid replies, and the share of prompt tokens read from the prefix cache.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import ValidationError

import adapters as adapter_package
from loadtests.bench_report import ComparisonResult, PhaseStats, add_ratios
from loadtests.bench_servers import LORAGATE, PEER_LORA
from loadtests.bench_structured import chat_body
from loadtests.common import percentile, progress, run_pool
from service.tasks.triage.prompt import TriagePrompt
from service.tasks.triage.schema import Ticket, TicketTriage
from service.tasks.triage.service import LABEL_ALTERNATIVES, REPETITION_PENALTY

if TYPE_CHECKING:
    from loadtests.bench import Bench

ADAPTER = "ticket-triage"
ADAPTER_DIR = Path(adapter_package.__file__).resolve().parent / ADAPTER
TICKETS = Path(adapter_package.__file__).resolve().parent / "data" / "triage_validation.jsonl"
MAX_TOKENS = 256  # the triage endpoint's default budget
TICKET_FIELDS = ("subject", "body", "customer_tier", "channel")
LORAGATE_ARM, PEER_ARM, SALTED_ARM = "loragate", "vllm-lora", "loragate, no prefix reuse"
DESCRIPTION = (
    f"Ticket triage with the shipped `{ADAPTER}` adapter, the same validation tickets: loragate's POST "
    "/v1/tickets/triage (label probabilities on, as served) vs vLLM's own server in loragate's layout with "
    "`--enable-lora` (`vllm-lora`), as chat completions with the same prompt, the same TicketTriage schema in "
    f"`response_format` (strict), the same sampling (greedy, max_tokens {MAX_TOKENS}) and the same top-"
    f"{LABEL_ALTERNATIVES} logprobs; and loragate with a fresh `cache_salt` per ticket (no prefix reuse) at the "
    "mixed concurrency. req/s counts schema-valid replies only (x60: tickets/min); latency is the whole reply.")


def load_tickets(count: int, source: Path = TICKETS) -> list[dict[str, Any]]:
    """The first `count` tickets of a JSONL file, as the triage endpoint takes them."""
    rows = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    return [{key: row[key] for key in TICKET_FIELDS if row.get(key) is not None} for row in rows[:count]]


def peer_body(ticket: dict[str, Any], prompt: TriagePrompt) -> dict[str, Any]:
    """The chat completion a vLLM user would send for the triage loragate serves."""
    messages = [m.model_dump() for m in prompt.messages(Ticket.model_validate(ticket))]
    return chat_body(ADAPTER, messages, MAX_TOKENS, True, REPETITION_PENALTY,
                     extra={"logprobs": True, "top_logprobs": LABEL_ALTERNATIVES})


def _post(client: httpx.Client, path: str, body: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(the reply's JSON, the timed result): no JSON, and a failed result, for a transport error or
    a status other than 200."""
    started = time.perf_counter()
    try:
        response = client.post(path, json=body, timeout=1800)
    except httpx.HTTPError as exc:
        return None, {"ok": False, "valid": False, "duration_s": time.perf_counter() - started, "status": None,
                      "error": f"{type(exc).__name__}: {exc}"}
    duration = time.perf_counter() - started
    if response.status_code != 200:
        return None, {"ok": False, "valid": False, "duration_s": duration, "status": response.status_code,
                      "error": response.text[:300]}
    return response.json(), {"ok": True, "duration_s": duration}


def post_triage(client: httpx.Client, ticket: dict[str, Any], salt: bool) -> dict[str, Any]:
    body = {**ticket, "model": ADAPTER} | ({"cache_salt": uuid.uuid4().hex} if salt else {})
    reply, result = _post(client, "/v1/tickets/triage", body)
    if reply is None:
        return result
    meta = reply["meta"]
    return result | {"valid": True, "completion_tokens": meta["completion_tokens"],
                     "prompt_tokens": meta["prompt_tokens"], "cached_tokens": meta.get("cached_prompt_tokens"),
                     "labels": reply["triage"]}


def post_peer(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    reply, result = _post(client, "/v1/chat/completions", body)
    if reply is None:
        return result
    usage = reply.get("usage") or {}
    try:
        labels = TicketTriage.model_validate_json(reply["choices"][0]["message"]["content"] or "").model_dump()
    except ValidationError:
        labels = None
    return result | {"valid": labels is not None, "completion_tokens": usage.get("completion_tokens", 0),
                     "prompt_tokens": usage.get("prompt_tokens"),
                     "cached_tokens": (usage.get("prompt_tokens_details") or {}).get("cached_tokens"),
                     "labels": labels}


def _row(arm: str, server: str, level: int, results: list[dict[str, Any]], wall: float,
         per_round: list[float]) -> PhaseStats:
    ok = [r for r in results if r["ok"]]
    valid = [r for r in ok if r["valid"]]
    prompt = sum(r["prompt_tokens"] or 0 for r in ok)
    cached = [r["cached_tokens"] for r in ok if r["cached_tokens"] is not None]
    return PhaseStats(
        system=arm, server=server, concurrency=level, requests=len(results), failed=len(results) - len(ok),
        output_tokens=sum(r["completion_tokens"] for r in ok), wall_s=round(wall, 3),
        tokens_per_s=sum(r["completion_tokens"] for r in ok) / wall if wall else None,
        requests_per_s=len(valid) / wall if wall else None,
        latency_p50_s=percentile([r["duration_s"] for r in ok], 50),
        latency_p95_s=percentile([r["duration_s"] for r in ok], 95),
        per_round_tokens_per_s=[round(v, 2) for v in per_round], schema_valid=len(valid),
        prefix_cache_hit_ratio=sum(cached) / prompt if prompt and len(cached) == len(ok) else None,
        errors=[f"{r.get('status')}: {str(r.get('error'))[:200]}" for r in results if not r["ok"]][:3],
    )


def triage(bench: Bench) -> ComparisonResult:
    args, prompt = bench.args, TriagePrompt.load()
    has_peer = PEER_LORA in bench.servers.servers
    levels = list(args.concurrency)
    arms: list[tuple[str, str, list[int]]] = [(LORAGATE_ARM, LORAGATE, levels)]
    arms += [(PEER_ARM, PEER_LORA, levels)] if has_peer else []
    arms += [(SALTED_ARM, LORAGATE, [args.mix_concurrency])]
    counts = {level: max(args.min_tickets, args.waves * level) for level in levels + [args.mix_concurrency]}
    # Fresh tickets for every round and level (a repeated ticket would be a whole-prompt cache hit);
    # within one round and level, every arm gets the same ones.
    pool = load_tickets(sum(counts[level] for level in levels) * args.rounds + len(arms))
    result = ComparisonResult(name="triage", description=DESCRIPTION)

    def send(arm: str, ticket: dict[str, Any]) -> dict[str, Any]:
        if arm == PEER_ARM:
            return post_peer(bench.clients[PEER_LORA], peer_body(ticket, prompt))
        return post_triage(bench.clients[LORAGATE], ticket, salt=arm == SALTED_ARM)

    for i, (arm, server, _) in enumerate(arms):  # untimed: the grammar compiles, the adapter loads
        bench.use(server)
        warm = send(arm, pool[-1 - i])
        result.warmup_failed += 0 if warm["ok"] else 1
    collected: dict[tuple[str, int], list[dict[str, Any]]] = {}
    walls: dict[tuple[str, int], float] = {}
    per_round: dict[tuple[str, int], list[float]] = {}
    offset = 0
    for round_ in range(1, args.rounds + 1):
        for level in levels:
            tickets = pool[offset:offset + counts[level]]
            offset += counts[level]
            for arm, server, arm_levels in arms:
                if level not in arm_levels:
                    continue
                key = (arm, level)
                label = f"triage round {round_}/{args.rounds} c={level} {arm}"
                with bench.measure(label, server):
                    bench.sample()
                    started = time.perf_counter()
                    results = run_pool(tickets, level, lambda t, a=arm: send(a, t), lambda *_: None)
                    wall = time.perf_counter() - started
                collected.setdefault(key, []).extend(results)
                walls[key] = walls.get(key, 0.0) + wall
                valid = sum(r["valid"] for r in results)
                per_round.setdefault(key, []).append(valid / wall * 60 if wall else 0.0)
                progress(f"{label}: {valid / wall * 60:.1f} tickets/min, {valid}/{len(results)} valid, "
                         f"{sum(not r['ok'] for r in results)} failed")
    for (arm, level), results in collected.items():
        server = next(s for a, s, _ in arms if a == arm)
        result.rows.append(_row(arm, server, level, results, walls[(arm, level)], per_round[(arm, level)]))
    if has_peer:
        add_ratios(result, LORAGATE_ARM, PEER_ARM)
    add_ratios(result, LORAGATE_ARM, SALTED_ARM)
    result.details["notes"] = _notes(collected, args.mix_concurrency, has_peer)
    result.details["tickets_per_phase"] = {f"c{level}": count for level, count in counts.items()}
    return result


def _notes(collected: dict[tuple[str, int], list[dict[str, Any]]], mix: int, has_peer: bool) -> list[str]:
    notes = ["per-round figures in `per_round_tokens_per_s` are tickets/min for this comparison."]
    if has_peer:
        ours, theirs = collected.get((LORAGATE_ARM, mix), []), collected.get((PEER_ARM, mix), [])
        same_prompt = sum(a["ok"] and b["ok"] and a["prompt_tokens"] == b["prompt_tokens"] for a, b in zip(ours, theirs))
        same_labels = sum(a["valid"] and b["valid"] and all(a["labels"][k] == b["labels"][k] for k in
                                                             ("category", "priority")) for a, b in zip(ours, theirs))
        notes.append(f"c{mix}: prompts of equal token count in both servers: {same_prompt}/{len(ours)} (the same "
                     f"rendered prompt); equal category and priority: {same_labels}/{len(ours)} (loragate's labels "
                     "follow its decision policy on the label probabilities, vLLM's are the decoded ones).")
    return notes
