"""KV block size 128 (vLLM's CPU default) vs 32 (loragate's CPU default since this check): base-model
decode tokens/s at concurrency 8 (32 requests x 48 tokens) and triage with the shipped adapter at
concurrency 8 (16 fresh validation tickets each, after one warm-up ticket), one service at a time.

Run from the repository root: `.venv/bin/python loadtests/results/prefix-cache/block_size_check.py`
(2026-12-07, the 2-core AMD EPYC, nothing else running, about 5 minutes); output: block-size.jsonl.
A decision check, one round per size: the full bench's figures are in loadtests/results/bench.md."""
import json, os, subprocess, sys, time, uuid, signal
from concurrent.futures import ThreadPoolExecutor
import httpx
from loadtests.bench_triage import load_tickets
out = {}
tickets = load_tickets(80)
for rnd, size in enumerate(["128", "32"]):
    env = dict(os.environ, LORAGATE_BLOCK_SIZE=size, LORAGATE_AUTH_DISABLED="true",
               LORAGATE_ADAPTER_STORE=f"/tmp/block-size-store-{rnd}", LORAGATE_ADAPTER_ROOTS='["adapters"]')
    log = open(f"/tmp/block-size-serve-{rnd}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "service", "serve", "--port", "8120"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    c = httpx.Client(base_url="http://127.0.0.1:8120", timeout=900)
    while True:
        try:
            if c.get("/health/ready").status_code == 200: break
        except httpx.HTTPError: pass
        time.sleep(2)
    r = c.post("/admin/adapters", json={"name": "ticket-triage", "path": os.path.abspath("adapters/ticket-triage")}); assert r.status_code == 201, r.text
    body = {"model": "SmolLM2-135M-Instruct", "messages": [{"role": "user", "content": "Name three colors."}],
            "max_tokens": 48, "min_tokens": 48, "ignore_eos": True}
    c.post("/v1/chat/completions", json=body)
    c.post("/v1/tickets/triage", json=tickets[-1] | {"model": "ticket-triage"})
    with ThreadPoolExecutor(8) as pool:
        t0 = time.perf_counter(); rs = list(pool.map(lambda _: c.post("/v1/chat/completions", json=body).json(), range(32))); wall = time.perf_counter() - t0
    base = sum(x["usage"]["completion_tokens"] for x in rs) / wall
    batch = tickets[rnd * 16:(rnd + 1) * 16]
    with ThreadPoolExecutor(8) as pool:
        t0 = time.perf_counter(); ts = list(pool.map(lambda t: c.post("/v1/tickets/triage", json=t | {"model": "ticket-triage"}).json(), batch)); wall2 = time.perf_counter() - t0
    cached = sum(t["meta"]["cached_prompt_tokens"] for t in ts); prompt = sum(t["meta"]["prompt_tokens"] for t in ts)
    lat = sorted(t["meta"]["latency_ms"] for t in ts)
    res = {"block": size, "base_tok_s": round(base, 2), "triage_tickets_min": round(16 / wall2 * 60, 2),
           "triage_latency_p50_ms": lat[8], "cached_share": round(cached / prompt, 3)}
    print(json.dumps(res), flush=True)
    out.setdefault(size, []).append(res)
    os.killpg(proc.pid, signal.SIGTERM); proc.wait(60)
