"""Cost and benefit of constrained decoding (response_format json_schema) on the triage prompt.

Starts its own service (service/testing/process.py) on a throw-away adapter store, then:

A. constrained vs unconstrained speed. For N tickets from service/testing/tickets.jsonl the triage chat
   prompt is built exactly as the service builds it (service.tasks.triage.TriagePrompt), and sent at
   concurrency C as streaming chat requests: (a) with response_format json_schema (TicketTriage,
   strict), max_tokens 256; then (b) the same prompt without a constraint and with max_tokens set
   to the number of tokens (a) used for that ticket. The rounds alternate a, b, a, b, ... so drift
   on a shared machine hits both alike. When the service honours vLLM's `min_tokens` (or
   `ignore_eos`) - probed at start - (b) is forced to exactly the same length; otherwise (b) may
   stop early, and the comparison rests on the length-normalised figures: per-token latency
   ((last token - first token) / (tokens - 1)) and output tokens/s. Reported for each: output
   tokens/s over the run, p50/p95 per-token latency, p50/p95 time to first token, and the ratios
   constrained / unconstrained.
B. valid-JSON rate. Every ticket (or --part-b-tickets) without a constraint, max_tokens 256:
   replies that parse as JSON, that validate against TicketTriage, and the same after extracting
   the first {...} block (from a markdown fence or surrounding prose); compared with the
   constrained path on the same tickets and with the published 85% figure.

Both parts use temperature 0 and the repetition penalty the triage endpoint sends (1.15).

    .venv/bin/python -m loadtests.bench_structured --tickets 24 --concurrency 4

Writes loadtests/results/structured.json (figures + machine info) and loadtests/results/structured.png.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from loadtests.common import REPO_ROOT, RESULTS_DIR, machine_info, mean, percentile, progress, run_pool
from service.tasks.triage import REPETITION_PENALTY, Ticket, TicketTriage, TriagePrompt
from service.testing import TICKETS_FILE
from service.testing.process import ServiceProcess

DEFAULT_MODEL = "SmolLM2-135M-Instruct"
PUBLISHED_VALID_RATE = 0.85  # the base model's published valid-JSON rate without constraints
SCHEMA = TicketTriage.model_json_schema()
TICKET_FIELDS = ("subject", "body", "customer_tier", "channel", "metadata")


# ------------------------------------------------------------------------------ helpers




def spread(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "p50_s": percentile(values, 50), "p95_s": percentile(values, 95),
            "mean_s": mean(values)}


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None






# ------------------------------------------------------------------------------ tickets
def load_tickets(path: Path = TICKETS_FILE) -> list[dict[str, Any]]:
    """Each ticket with its chat messages, built exactly as the triage endpoint builds them."""
    prompt = TriagePrompt.load()
    tickets = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        raw = json.loads(line)
        ticket = Ticket(**{key: raw[key] for key in TICKET_FIELDS if raw.get(key) is not None})
        messages = [m.model_dump(mode="json", exclude_none=True) for m in prompt.messages(ticket)]
        tickets.append({"id": raw.get("id", f"t{len(tickets) + 1:03d}"), "messages": messages})
    return tickets


# ----------------------------------------------------------------------------- requests
def chat_body(model: str, messages: list[dict], max_tokens: int, constrained: bool,
              repetition_penalty: float | None, stream: bool = False, extra: dict | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0}
    if repetition_penalty is not None and repetition_penalty != 1.0:
        body["repetition_penalty"] = repetition_penalty
    if constrained:
        body["response_format"] = {"type": "json_schema",
                                   "json_schema": {"name": "TicketTriage", "schema": SCHEMA, "strict": True}}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body | (extra or {})


def stream_chat(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    """One streaming chat request, timed on the client: TTFT is the arrival of the first chunk that
    carries a choice (the service sends it with the first token), the end is the chunk with the
    finish_reason; per-token latency = (end - first) / (completion_tokens - 1)."""
    started = time.perf_counter()
    first = end = None
    parts: list[str] = []
    finish_reason = usage = error = None
    try:
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                response.read()
                return {"ok": False, "status": response.status_code, "error": response.text[:500]}
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    break
                event = json.loads(data)
                now = time.perf_counter()
                if "error" in event:
                    error = event["error"]
                    continue
                for choice in event.get("choices") or []:
                    if first is None:
                        first = now
                    parts.append((choice.get("delta") or {}).get("content") or "")
                    if choice.get("finish_reason"):
                        finish_reason, end = choice["finish_reason"], now
                if event.get("usage"):
                    usage = event["usage"]
    except httpx.HTTPError as exc:
        return {"ok": False, "status": None, "error": f"{type(exc).__name__}: {exc}"}
    done = time.perf_counter()
    end = end or done
    tokens = (usage or {}).get("completion_tokens")
    result: dict[str, Any] = {
        "ok": error is None and tokens is not None and first is not None, "status": 200, "error": error,
        "text": "".join(parts), "finish_reason": finish_reason, "completion_tokens": tokens,
        "prompt_tokens": (usage or {}).get("prompt_tokens"),
        "ttft_s": first - started if first is not None else None, "duration_s": end - started,
        "per_token_s": (end - first) / (tokens - 1) if first is not None and tokens and tokens > 1 else None,
        "started_at": started, "ended_at": end,
    }
    return result


def post_chat(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    """One non-streaming chat request (Part B and the probe)."""
    started = time.perf_counter()
    try:
        response = client.post("/v1/chat/completions", json=body)
    except httpx.HTTPError as exc:
        return {"ok": False, "status": None, "error": f"{type(exc).__name__}: {exc}"}
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        return {"ok": False, "status": response.status_code, "error": response.text[:500], "duration_s": elapsed}
    payload = response.json()
    choice = payload["choices"][0]
    return {
        "ok": True, "status": 200, "text": choice["message"]["content"] or "",
        "finish_reason": choice["finish_reason"], "completion_tokens": payload["usage"]["completion_tokens"],
        "duration_s": elapsed, "structured_header": response.headers.get("x-loragate-structured-output"),
        "structured_backend": response.headers.get("x-loragate-structured-backend"),
    }


# ------------------------------------------------------------------ length-forcing probe
def probe_length_forcing(client: httpx.Client, model: str) -> dict[str, Any]:
    """Does the service honour vLLM's `min_tokens` / `ignore_eos`? The request schema allows extra
    fields, so an unsupported one is accepted and silently ignored - hence a behavioural probe: a
    short question answered in far fewer than `target` tokens, asked again with each extra."""
    target = 48
    messages = [{"role": "user", "content": "Say hi."}]
    baseline = post_chat(client, chat_body(model, messages, target, False, None))
    out: dict[str, Any] = {"target_tokens": target, "baseline": _probe_view(baseline), "use": None}
    if not baseline.get("ok") or baseline["completion_tokens"] >= target:
        out["note"] = "inconclusive: the baseline reply did not stop early"
        return out
    for field, value in (("min_tokens", target), ("ignore_eos", True)):
        reply = post_chat(client, chat_body(model, messages, target, False, None, extra={field: value}))
        view = _probe_view(reply)
        view["honoured"] = bool(reply.get("ok") and reply["completion_tokens"] == target)
        out[field] = view
        if view["honoured"] and out["use"] is None:
            out["use"] = field
    return out


def _probe_view(reply: dict[str, Any]) -> dict[str, Any]:
    return {key: reply.get(key) for key in ("status", "completion_tokens", "finish_reason", "error")}


# ------------------------------------------------------------------------------- part A
def arm_messages(messages: list[dict], arm: str) -> list[dict]:
    """The ticket's messages with an arm mark (`Run A.`/`Run B.`, the same token count) at the very
    start. vLLM caches prompt prefixes: without it the arm that runs second finds the other arm's
    prompts in the cache and skips their prefill, which measured 6.7 s against 25 s time to first
    token at concurrency 8. With it the arms share no prefix; within an arm the system prompt is
    shared across tickets alike."""
    first, *rest = messages
    return [first | {"content": f"{arm}. {first['content']}"}, *rest]


def part_a(base_url: str, model: str, tickets: list[dict], concurrency: int, rounds: int, max_tokens: int,
           repetition_penalty: float | None, forcing: str | None) -> tuple[dict[str, Any], dict[str, dict]]:
    """The summary, and the full constrained replies (Part B reuses them)."""
    batches = [tickets[i::rounds] for i in range(rounds)]  # near-equal rounds
    batches = [b for b in batches if b]
    constrained: dict[str, dict] = {}
    unconstrained: dict[str, dict] = {}
    wall = {"constrained": 0.0, "unconstrained": 0.0}
    limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)
    with httpx.Client(base_url=base_url, timeout=900, limits=limits) as client:
        for number, batch in enumerate(batches, 1):
            label = f"A round {number}/{len(batches)}"

            def report(arm: str) -> Callable[[int, int, Any, dict[str, Any]], None]:
                def show(done: int, total: int, ticket: dict, r: dict[str, Any]) -> None:
                    if not r["ok"]:
                        progress(f"{label} {arm:<13} {done}/{total} {ticket['id']}: FAILED {r.get('status')} "
                                 f"{str(r.get('error'))[:200]}")
                        return
                    per_token = f"{r['per_token_s'] * 1000:.0f} ms/tok" if r["per_token_s"] else "- ms/tok"
                    progress(f"{label} {arm:<13} {done}/{total} {ticket['id']}: {r['completion_tokens']:>3} tok "
                             f"({r['finish_reason']}), TTFT {r['ttft_s']:.2f} s, {per_token}, "
                             f"total {r['duration_s']:.1f} s")
                return show

            # (a) constrained
            started = time.perf_counter()
            results = run_pool(batch, concurrency, lambda t: stream_chat(client, chat_body(
                model, arm_messages(t["messages"], "Run A"), max_tokens, True, repetition_penalty, stream=True)),
                report("constrained"))
            wall["constrained"] += time.perf_counter() - started
            constrained.update({t["id"]: r for t, r in zip(batch, results)})

            # (b) unconstrained, the same length as (a) for each ticket (as far as the service allows)
            todo = [t for t in batch if constrained[t["id"]]["ok"]]

            def unconstrained_body(ticket: dict) -> dict[str, Any]:
                length = max(1, constrained[ticket["id"]]["completion_tokens"])
                forced = (forcing or "").split("+")  # e.g. "min_tokens+ignore_eos" sends both
                extra = ({"min_tokens": length} if "min_tokens" in forced else {}) | (
                    {"ignore_eos": True} if "ignore_eos" in forced else {})
                return chat_body(model, arm_messages(ticket["messages"], "Run B"), length, False, repetition_penalty,
                                 stream=True, extra=extra)

            started = time.perf_counter()
            results = run_pool(todo, concurrency, lambda t: stream_chat(client, unconstrained_body(t)),
                               report("unconstrained"))
            wall["unconstrained"] += time.perf_counter() - started
            unconstrained.update({t["id"]: r for t, r in zip(todo, results)})
    return summarise_part_a(constrained, unconstrained, wall, len(batches), forcing), constrained


def summarise_part_a(constrained: dict[str, dict], unconstrained: dict[str, dict], wall: dict[str, float],
                     rounds: int, forcing: str | None) -> dict[str, Any]:
    def arm(results: dict[str, dict], seconds: float) -> dict[str, Any]:
        ok = [r for r in results.values() if r["ok"]]
        tokens = sum(r["completion_tokens"] for r in ok)
        return {
            "requests": len(results), "failed": len(results) - len(ok),
            "completion_tokens_total": tokens,
            "mean_completion_tokens": tokens / len(ok) if ok else None,
            "wall_s": seconds,
            "throughput_tok_s": tokens / seconds if seconds else None,
            "per_token_latency": spread([r["per_token_s"] for r in ok if r["per_token_s"] is not None]),
            "ttft": spread([r["ttft_s"] for r in ok]),
            "duration": spread([r["duration_s"] for r in ok]),
            "finish_reasons": _count(r["finish_reason"] for r in ok),
        }

    a, b = arm(constrained, wall["constrained"]), arm(unconstrained, wall["unconstrained"])
    pairs = [(constrained[k], unconstrained[k]) for k in unconstrained
             if constrained[k]["ok"] and unconstrained[k]["ok"]]
    per_ticket = [x["per_token_s"] / y["per_token_s"] for x, y in pairs if x["per_token_s"] and y["per_token_s"]]
    equal = [(x, y) for x, y in pairs if x["completion_tokens"] == y["completion_tokens"]]
    equal_ratios = [x["per_token_s"] / y["per_token_s"] for x, y in equal if x["per_token_s"] and y["per_token_s"]]
    constrained_valid = sum(1 for r in constrained.values() if r["ok"] and classify(r["text"])["schema_valid"])
    return {
        "rounds": rounds,
        "length_forcing": forcing or "none: max_tokens = constrained length (a cap, not a floor)",
        "constrained": a,
        "unconstrained": b,
        "ratios_constrained_over_unconstrained": {
            "throughput_tok_s": ratio(a["throughput_tok_s"], b["throughput_tok_s"]),
            "per_token_latency_p50": ratio(a["per_token_latency"]["p50_s"], b["per_token_latency"]["p50_s"]),
            "per_token_latency_p95": ratio(a["per_token_latency"]["p95_s"], b["per_token_latency"]["p95_s"]),
            "ttft_p50": ratio(a["ttft"]["p50_s"], b["ttft"]["p50_s"]),
            "ttft_p95": ratio(a["ttft"]["p95_s"], b["ttft"]["p95_s"]),
            "per_token_latency_paired_median": percentile(per_ticket, 50),
        },
        "length_match": {
            "pairs": len(pairs), "equal_length_pairs": len(equal),
            "per_token_latency_ratio_median_equal_length": percentile(equal_ratios, 50),
            "mean_tokens_constrained": mean([x["completion_tokens"] for x, _ in pairs]),
            "mean_tokens_unconstrained": mean([y["completion_tokens"] for _, y in pairs]),
        },
        "constrained_schema_valid": {"valid": constrained_valid, "of": len(constrained)},
        "samples": {
            ticket: {"constrained": _sample(constrained[ticket]),
                     "unconstrained": _sample(unconstrained[ticket]) if ticket in unconstrained else None}
            for ticket in constrained
        },
    }


def _sample(r: dict[str, Any]) -> dict[str, Any]:
    keys = ("ok", "status", "error", "completion_tokens", "prompt_tokens", "finish_reason", "ttft_s",
            "per_token_s", "duration_s")
    return {key: r.get(key) for key in keys}


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[str(value)] = counts.get(str(value), 0) + 1
    return counts


# ------------------------------------------------------------------------------- part B
FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```", re.S)


def _schema_valid(value: Any) -> bool:
    try:
        TicketTriage.model_validate(value, strict=True)
        return True
    except ValidationError:
        return False


def extract_first_object(text: str) -> tuple[Any, str] | None:
    """The first {...} that parses as a JSON object: inside a markdown fence first, then anywhere."""
    decoder = json.JSONDecoder()
    candidates = [("fence", m.group(1)) for m in FENCE.finditer(text)] + [("text", text)]
    for where, candidate in candidates:
        for match in re.finditer(r"\{", candidate):
            try:
                value, _ = decoder.raw_decode(candidate, match.start())
            except ValueError:
                continue
            if isinstance(value, dict):
                return value, where
    return None


def classify(text: str) -> dict[str, Any]:
    """`json`/`schema_valid`: the whole reply is JSON (surrounding whitespace aside) / a valid
    TicketTriage. `extracted_*`: the same, or else the first {...} block (fence or prose) is."""
    out = {"json": False, "schema_valid": False, "extracted_json": False, "extracted_schema_valid": False,
           "extracted_from": None}
    try:
        value = json.loads(text.strip())
        out["json"] = True
        out["schema_valid"] = _schema_valid(value)
    except ValueError:
        pass
    out["extracted_json"], out["extracted_schema_valid"] = out["json"], out["schema_valid"]
    if not out["schema_valid"]:
        found = extract_first_object(text)
        if found is not None:
            value, where = found
            out["extracted_json"] = True
            out["extracted_from"] = where
            out["extracted_schema_valid"] = _schema_valid(value)
    return out


def part_b(base_url: str, model: str, tickets: list[dict], concurrency: int, max_tokens: int,
           repetition_penalty: float | None, constrained_done: dict[str, dict]) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)
    with httpx.Client(base_url=base_url, timeout=900, limits=limits) as client:
        def show(arm: str) -> Callable[[int, int, Any, dict[str, Any]], None]:
            def report(done: int, total: int, ticket: dict, r: dict[str, Any]) -> None:
                if not r["ok"]:
                    progress(f"B {arm:<13} {done}/{total} {ticket['id']}: FAILED {r.get('status')} "
                             f"{str(r.get('error'))[:200]}")
                    return
                c = classify(r["text"])
                verdict = ("schema-valid" if c["schema_valid"] else "json, not schema" if c["json"] else
                           f"extracted {'schema-valid' if c['extracted_schema_valid'] else 'json'} "
                           f"({c['extracted_from']})" if c["extracted_json"] else "not json")
                progress(f"B {arm:<13} {done}/{total} {ticket['id']}: {r['completion_tokens']:>3} tok "
                         f"({r['finish_reason']}), {verdict}")
            return report

        free = run_pool(tickets, concurrency, lambda t: post_chat(client, chat_body(
            model, t["messages"], max_tokens, False, repetition_penalty)), show("unconstrained"))
        # The constrained replies from Part A used the same prompt and sampling: reuse them.
        todo = [t for t in tickets if not constrained_done.get(t["id"], {}).get("ok")]
        fresh = run_pool(todo, concurrency, lambda t: post_chat(client, chat_body(
            model, t["messages"], max_tokens, True, repetition_penalty)), show("constrained"))
    fresh_by_id = {t["id"]: r for t, r in zip(todo, fresh)}
    constrained = {t["id"]: fresh_by_id.get(t["id"]) or constrained_done[t["id"]] for t in tickets}
    return {
        "tickets": len(tickets),
        "unconstrained": validity({t["id"]: r for t, r in zip(tickets, free)}),
        "constrained": validity(constrained) | {"reused_from_part_a": len(tickets) - len(todo)},
        "published_valid_rate": PUBLISHED_VALID_RATE,
    }


def validity(results: dict[str, dict]) -> dict[str, Any]:
    per_ticket = {}
    counts = {"json": 0, "schema_valid": 0, "extracted_json": 0, "extracted_schema_valid": 0, "failed": 0,
              "truncated": 0}
    for ticket, r in results.items():
        if not r["ok"]:
            counts["failed"] += 1
            per_ticket[ticket] = {"ok": False, "status": r.get("status"), "error": r.get("error")}
            continue
        c = classify(r["text"])
        for key in ("json", "schema_valid", "extracted_json", "extracted_schema_valid"):
            counts[key] += bool(c[key])
        counts["truncated"] += r["finish_reason"] == "length"
        per_ticket[ticket] = {"ok": True, "completion_tokens": r["completion_tokens"],
                              "finish_reason": r["finish_reason"], **c,
                              "structured_header": r.get("structured_header"), "text": r["text"][:600]}
    # Rates are over the tickets that got a reply: a refused request (e.g. a prompt too long for
    # the context with max_tokens on top) is refused alike with or without a constraint.
    n = len(results)
    answered = n - counts["failed"]
    rates = {f"{key}_rate": counts[key] / answered if answered else None
             for key in ("json", "schema_valid", "extracted_json", "extracted_schema_valid")}
    return {"requests": n, "answered": answered, **counts, **rates,
            "schema_valid_rate_of_all_requests": counts["schema_valid"] / n if n else None,
            "failed_tickets": {k: v["error"] for k, v in per_ticket.items() if not v["ok"]},
            "per_ticket": per_ticket}


# ------------------------------------------------------------------------------- report
def _ms(value: float | None) -> str:
    return f"{value * 1000:.1f}" if value is not None else "-"


def _x(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else "-"


def _pct(value: float | None) -> str:
    return f"{value * 100:.1f}%" if value is not None else "-"


def print_table(results: dict[str, Any]) -> None:
    cfg = results["config"]
    a = results.get("part_a")
    if a:
        print(f"\nPart A: constrained vs unconstrained ({cfg['tickets']} tickets, concurrency {cfg['concurrency']}, "
              f"{a['rounds']} round(s) alternating constrained/unconstrained, length forcing: {a['length_forcing']})")
        print(f"{'arm':<14} {'req':>4} {'fail':>4} {'tok':>6} {'tok/req':>7} {'wall s':>7} {'tok/s':>7} "
              f"{'ms/tok p50':>10} {'p95':>7} {'TTFT ms p50':>11} {'p95':>7}")
        for name in ("constrained", "unconstrained"):
            r = a[name]
            mean = f"{r['mean_completion_tokens']:.1f}" if r["mean_completion_tokens"] is not None else "-"
            tps = f"{r['throughput_tok_s']:.1f}" if r["throughput_tok_s"] is not None else "-"
            print(f"{name:<14} {r['requests']:>4} {r['failed']:>4} {r['completion_tokens_total']:>6} {mean:>7} "
                  f"{r['wall_s']:>7.1f} {tps:>7} {_ms(r['per_token_latency']['p50_s']):>10} "
                  f"{_ms(r['per_token_latency']['p95_s']):>7} {_ms(r['ttft']['p50_s']):>11} "
                  f"{_ms(r['ttft']['p95_s']):>7}")
        q = a["ratios_constrained_over_unconstrained"]
        print(f"{'ratio c/u':<14} {'':>4} {'':>4} {'':>6} {'':>7} {'':>7} {_x(q['throughput_tok_s']):>7} "
              f"{_x(q['per_token_latency_p50']):>10} {_x(q['per_token_latency_p95']):>7} {_x(q['ttft_p50']):>11} "
              f"{_x(q['ttft_p95']):>7}")
        m = a["length_match"]
        print(f"paired per-ticket ms/tok ratio (median): {_x(q['per_token_latency_paired_median'])}; "
              f"equal-length pairs {m['equal_length_pairs']}/{m['pairs']} "
              f"(median ratio there {_x(m['per_token_latency_ratio_median_equal_length'])}); mean tokens "
              f"constrained {m['mean_tokens_constrained'] or 0:.1f} vs unconstrained {m['mean_tokens_unconstrained'] or 0:.1f}")
    b = results.get("part_b")
    if b:
        print(f"\nPart B: valid JSON on {b['tickets']} tickets (max_tokens {cfg['max_tokens']}, temperature 0, "
              f"repetition_penalty {cfg['repetition_penalty']}); rates over answered requests")
        print(f"{'path':<32} {'answered':>8} {'JSON':>7} {'schema':>7} {'JSON*':>7} {'schema*':>8} {'trunc':>6} "
              f"{'refused':>7}")
        for name in ("unconstrained", "constrained"):
            r = b[name]
            print(f"{name:<32} {r['answered']:>8} {_pct(r['json_rate']):>7} {_pct(r['schema_valid_rate']):>7} "
                  f"{_pct(r['extracted_json_rate']):>7} {_pct(r['extracted_schema_valid_rate']):>8} "
                  f"{r['truncated']:>6} {r['failed']:>7}")
        print(f"{'published (base, no constraint)':<32} {'':>8} {'':>7} {_pct(b['published_valid_rate']):>7}")
        print("JSON = whole reply parses; schema = validates against TicketTriage; * = or else the first {...} "
              "block (markdown fence or prose) does")
        for ticket, error in b["unconstrained"]["failed_tickets"].items():
            print(f"refused: {ticket}: {str(error)[:160]}")


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    fig, axes = plt.subplots(1, 4, figsize=(17, 4.4))
    colours = {"constrained": "tab:blue", "unconstrained": "tab:orange"}
    arms = ("constrained", "unconstrained")
    a = results.get("part_a")
    if a:
        ax = axes[0]
        values = [a[n]["throughput_tok_s"] or 0 for n in arms]
        ax.bar(arms, values, color=[colours[n] for n in arms])
        for i, v in enumerate(values):
            ax.text(i, v, f"{v:.1f}", ha="center", va="bottom")
        ax.set_ylabel("output tokens / s (whole run)")
        ax.set_title(f"Throughput: ratio {_x(a['ratios_constrained_over_unconstrained']['throughput_tok_s'])}")
        for ax, key, title in ((axes[1], "per_token_latency", "Per-token latency"), (axes[2], "ttft", "TTFT")):
            for offset, q in ((-0.2, "p50_s"), (0.2, "p95_s")):
                vals = [(a[n][key][q] or 0) * 1000 for n in arms]
                ax.bar([i + offset for i in range(2)], vals, 0.4, label=q[:3],
                       color=[colours[n] for n in arms], alpha=1.0 if q == "p50_s" else 0.55)
            ax.set_xticks([0, 1], list(arms))
            ax.set_ylabel("ms")
            r = a["ratios_constrained_over_unconstrained"]
            short = "per_token_latency" if key == "per_token_latency" else "ttft"
            ax.set_title(f"{title} p50/p95: ratio {_x(r[short + '_p50'])} / {_x(r[short + '_p95'])}")
            ax.legend(handles=[Patch(facecolor="grey", label="p50"), Patch(facecolor="grey", alpha=0.55, label="p95")],
                      loc="lower center")
    else:
        for ax in axes[:3]:
            ax.set_axis_off()
    ax = axes[3]
    b = results.get("part_b")
    labels, values, cols = [], [], []
    if b:
        labels += ["base\nstrict JSON", "base\nextracted {...}", "constrained"]
        values += [b["unconstrained"]["schema_valid_rate"] or 0, b["unconstrained"]["extracted_schema_valid_rate"] or 0,
                   b["constrained"]["schema_valid_rate"] or 0]
        cols += ["tab:orange", "navajowhite", "tab:blue"]
    elif a:
        v = a["constrained_schema_valid"]
        labels.append("constrained")
        values.append(v["valid"] / v["of"] if v["of"] else 0)
        cols.append("tab:blue")
    ax.bar(labels, [v * 100 for v in values], color=cols)
    for i, v in enumerate(values):
        ax.text(i, v * 100, f"{v * 100:.0f}%", ha="center", va="bottom")
    ax.axhline(PUBLISHED_VALID_RATE * 100, color="red", linestyle="--", label=f"published {PUBLISHED_VALID_RATE:.0%}")
    ax.set_ylim(0, 110)
    ax.set_ylabel("% replies valid TicketTriage")
    ax.set_title("Valid-JSON rate (schema-valid)")
    ax.legend(loc="lower right")
    info, cfg = results["machine"], results["config"]
    fig.suptitle(f"loragate structured output - {cfg['model']}, {cfg['tickets']} tickets, concurrency "
                 f"{cfg['concurrency']} - {info['cpu_model']} ({info['nproc']} CPUs), {info['date']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=24, help="tickets for Part A (speed)")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight at once")
    parser.add_argument("--port", type=int, default=None, help="port for the service (default: a free one)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model name sent in requests")
    parser.add_argument("--skip-part-b", action="store_true", help="skip the valid-JSON part")
    parser.add_argument("--part-b-tickets", type=int, default=0, help="tickets for Part B (default: all)")
    parser.add_argument("--rounds", type=int, default=0,
                        help="interleaved constrained/unconstrained rounds in Part A (default: from N and C)")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--repetition-penalty", type=float, default=REPETITION_PENALTY,
                        help="sent with every request (default: what the triage endpoint sends; 1 = none)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--keep-work", action="store_true", help="keep the temp store and service log")
    return parser.parse_args(argv)


def default_rounds(tickets: int, concurrency: int) -> int:
    # At least two rounds (ABAB) when every round can still fill the concurrency; about 2C tickets each.
    return max(1, min(2, tickets // max(1, concurrency)), tickets // max(1, 2 * concurrency))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    all_tickets = load_tickets()
    tickets_a = all_tickets[:max(1, min(args.tickets, len(all_tickets)))]
    tickets_b = all_tickets[:args.part_b_tickets] if args.part_b_tickets > 0 else all_tickets
    rounds = args.rounds or default_rounds(len(tickets_a), args.concurrency)
    penalty = args.repetition_penalty if args.repetition_penalty != 1.0 else None
    args.out_dir.mkdir(parents=True, exist_ok=True)

    work = Path(tempfile.mkdtemp(prefix="bench-structured-"))
    (work / "sources").mkdir()
    env = {
        "LORAGATE_ADAPTER_STORE": str(work / "store"),
        "LORAGATE_ADAPTER_ROOTS": json.dumps([str(work / "sources")]),
    }
    proc = ServiceProcess(work / "service.log", env=env)
    if args.port:
        proc.port, proc.base_url = args.port, f"http://127.0.0.1:{args.port}"
    proc.start()
    progress(f"starting the service on {proc.base_url} (log {work / 'service.log'})")
    results: dict[str, Any] = {}
    run_started = time.monotonic()
    try:
        started = time.monotonic()
        proc.wait_ready()
        ready_s = time.monotonic() - started
        progress(f"service ready after {ready_s:.0f} s")
        with httpx.Client(base_url=proc.base_url, timeout=900) as client:
            probe = probe_length_forcing(client, args.model)
            progress(f"length forcing probe: min_tokens {probe.get('min_tokens', {}).get('honoured')}, "
                     f"ignore_eos {probe.get('ignore_eos', {}).get('honoured')} -> using {probe['use']}")
            # Warm-up (untimed): the first constrained request compiles the grammar; later ones hit
            # the cache. Timed separately so the cold cost is on record.
            warm = all_tickets[-1]["messages"]
            cold = stream_chat(client, chat_body(args.model, warm, args.max_tokens, True, penalty, stream=True))
            warm_free = stream_chat(client, chat_body(args.model, warm, 32, False, penalty, stream=True))
            progress(f"warm-up: first constrained request TTFT {cold.get('ttft_s') or 0:.2f} s, "
                     f"total {cold.get('duration_s') or 0:.1f} s; unconstrained TTFT {warm_free.get('ttft_s') or 0:.2f} s")
        results["warmup"] = {"first_constrained": _sample(cold), "first_unconstrained": _sample(warm_free)}
        results["length_forcing_probe"] = probe
        results["part_a"], constrained_replies = part_a(
            proc.base_url, args.model, tickets_a, args.concurrency, rounds, args.max_tokens, penalty, probe["use"])
        if not args.skip_part_b:
            results["part_b"] = part_b(proc.base_url, args.model, tickets_b, args.concurrency, args.max_tokens,
                                       penalty, constrained_replies)
    except BaseException:
        progress(f"failed; service log kept in {work}")
        proc.stop()
        raise
    proc.stop()
    if not args.keep_work:
        shutil.rmtree(work, ignore_errors=True)

    results = {
        "machine": machine_info(),
        "config": {"model": args.model, "tickets": len(tickets_a), "part_b_tickets": None if args.skip_part_b
                   else len(tickets_b), "concurrency": args.concurrency, "rounds": rounds,
                   "max_tokens": args.max_tokens, "temperature": 0, "repetition_penalty": args.repetition_penalty,
                   "service_ready_s": round(ready_s, 1), "run_s": round(time.monotonic() - run_started, 1),
                   "tickets_file": str(_shown(TICKETS_FILE))},
        **results,
    }
    json_path, png_path = args.out_dir / "structured.json", args.out_dir / "structured.png"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, png_path)
    print_table(results)
    print(f"\nwrote {_shown(json_path)} and {png_path.name}")


def _shown(path: Path) -> Path:
    """`path` relative to the checkout (or install) root when it lies inside, else as it is."""
    return path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path


if __name__ == "__main__":
    main()
