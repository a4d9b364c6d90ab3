"""`loragate bench --only triage`: what label probabilities cost the triage endpoint.

The same tickets through `POST /v1/tickets/triage` with `"probabilities": true` (the default: the
engine reports the top 20 alternatives of every token, the labels' distribution is read from them
and the decision policy applied) and `false` (the decoded labels as they are), rounds interleaved
(A B A B) on one server. Greedy decoding gives both arms the same replies, so the work is equal;
the difference is the cost of the probabilities.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import httpx

from loadtests.bench_report import ComparisonResult, PhaseStats, add_ratios
from loadtests.bench_servers import LORAGATE
from loadtests.common import percentile, progress, run_pool
from service.testing import TICKETS_FILE

if TYPE_CHECKING:
    from loadtests.bench import Bench

DESCRIPTION = ("Inside loragate: POST /v1/tickets/triage with label probabilities and the decision policy "
               "(default) vs without (`probabilities: false`), the same tickets, rounds interleaved.")
ARMS = {"probabilities": True, "no probabilities": False}
TICKET_FIELDS = ("subject", "body", "customer_tier", "channel")


def load_triage_tickets(count: int) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in TICKETS_FILE.read_text().splitlines() if line.strip()]
    return [{key: row[key] for key in TICKET_FIELDS if row.get(key) is not None} for row in rows[:count]]


def post_triage(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        response = client.post("/v1/tickets/triage", json=body, timeout=1800)
    except httpx.HTTPError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "duration_s": time.perf_counter() - started}
    duration = time.perf_counter() - started
    if response.status_code != 200:
        return {"ok": False, "status": response.status_code, "error": response.text[:300], "duration_s": duration}
    meta = response.json()["meta"]
    return {"ok": True, "duration_s": duration, "completion_tokens": meta["completion_tokens"],
            "labels": response.json()["triage"]}


def triage(bench: Bench) -> ComparisonResult:
    args, client = bench.args, bench.clients[LORAGATE]
    tickets = load_triage_tickets(args.tickets)
    concurrency = args.mix_concurrency
    result = ComparisonResult(name="triage", description=DESCRIPTION)
    bench.use(LORAGATE)
    for probabilities in ARMS.values():  # untimed: the grammar compiles on the first constrained request
        warm = post_triage(client, {**tickets[0], "model": bench.base, "probabilities": probabilities})
        result.warmup_failed += 0 if warm["ok"] else 1
    collected: dict[str, list[dict[str, Any]]] = {arm: [] for arm in ARMS}
    walls: dict[str, list[float]] = {arm: [] for arm in ARMS}
    per_round: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for round_ in range(1, args.rounds + 1):
        for arm, probabilities in ARMS.items():
            bodies = [{**t, "model": bench.base, "probabilities": probabilities} for t in tickets]
            with bench.measure(f"triage round {round_}/{args.rounds} {arm}", LORAGATE):
                bench.sample()
                started = time.perf_counter()
                results = run_pool(bodies, concurrency, lambda body: post_triage(client, body), lambda *_: None)
                wall = time.perf_counter() - started
            collected[arm] += results
            walls[arm].append(wall)
            tokens = sum(r["completion_tokens"] for r in results if r["ok"])
            per_round[arm].append(tokens / wall if wall else 0.0)
            progress(f"triage round {round_}/{args.rounds} {arm}: {len(results) / wall:.2f} tickets/s, "
                     f"{tokens / wall:.1f} tok/s, {sum(not r['ok'] for r in results)} failed")
    for arm, results in collected.items():
        ok = [r for r in results if r["ok"]]
        wall = sum(walls[arm])
        tokens = sum(r["completion_tokens"] for r in ok)
        result.rows.append(PhaseStats(
            system=arm, server=LORAGATE, concurrency=concurrency, requests=len(results),
            failed=len(results) - len(ok), output_tokens=tokens, wall_s=round(wall, 3),
            tokens_per_s=tokens / wall if wall else None, requests_per_s=len(ok) / wall if wall else None,
            latency_p50_s=percentile([r["duration_s"] for r in ok], 50),
            latency_p95_s=percentile([r["duration_s"] for r in ok], 95),
            per_round_tokens_per_s=per_round[arm],
            errors=[str(r.get("error"))[:200] for r in results if not r["ok"]][:3],
        ))
    add_ratios(result, "probabilities", "no probabilities")
    same = sum(a["ok"] and b["ok"] and a["labels"]["summary"] == b["labels"]["summary"]
               for a, b in zip(collected["probabilities"], collected["no probabilities"]))
    result.details["notes"] = [f"{len(tickets)} tickets x {args.rounds} rounds per arm at concurrency {concurrency}; "
                               f"replies with the same summary in both arms: {same}/{len(collected['probabilities'])} "
                               f"(greedy: equal work)."]
    return result
