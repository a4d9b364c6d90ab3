"""Structured-output coverage on public JSON schemas, side by side with vLLM's own server.

Every schema in tests/data/schemas (SchemaStore, Kubernetes, OpenAPI, CloudEvents, ... each with a
prompt) is sent once as a strict `json_schema` chat request (greedy, `max_tokens` 200 by default,
the base model, no repetition penalty) to each server, one server running at a time (the others
paused, as in `loragate bench`):

- `loragate`: compact JSON (its default);
- `loragate-spaces`: the same server, the request asking for any whitespace
  (`structured_outputs.disable_any_whitespace: false`);
- `vllm-compact`: vLLM's server in loragate's layout with `disable_any_whitespace` on (the same
  whitespace setting as loragate's default; vLLM allows it only with a named backend, so xgrammar,
  without vLLM's `auto` fallback to guidance);
- `vllm`: vLLM's server in loragate's layout with its defaults (backend `auto`: xgrammar, or
  guidance for what xgrammar cannot compile; any whitespace).

Each reply is classified `valid` (finish `stop` and valid against the full schema, checked here with
jsonschema and its format checker), `invalid`, `truncated` (finish `length`: with what filled the
tail: a whitespace run, a loop, or plain long output) or `error` (a 4xx/5xx). Counts are greedy,
so they do not depend on timing.

    .venv/bin/python -m loadtests.bench_schemas

Writes loadtests/results/schemas/schemas.json (per schema, per server) and schemas.png.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import httpx
import jsonschema
from pydantic import BaseModel

from loadtests.bench_layout import peer_spec, resolve_layout
from loadtests.bench_servers import LORAGATE, fleet, loragate_options
from loadtests.common import REPO_ROOT, RESULTS_DIR, machine_info, progress, run_pool

SCHEMAS = REPO_ROOT / "tests" / "data" / "schemas"
Outcome = Literal["valid", "invalid", "truncated", "error"]
# server name -> (process it runs on, extra request fields)
LEGS: dict[str, tuple[str, dict[str, Any]]] = {
    "loragate": (LORAGATE, {}),
    "loragate-spaces": (LORAGATE, {"structured_outputs": {"disable_any_whitespace": False}}),
    "vllm-compact": ("vllm-compact", {}),
    "vllm": ("vllm", {}),
}
# vLLM allows compact JSON only with a named backend (not "auto"): xgrammar, loragate's first backend.
COMPACT = ["--structured-outputs-config", json.dumps({"backend": "xgrammar", "disable_any_whitespace": True})]


class Reply(BaseModel):
    schema_name: str
    server: str
    status: int
    outcome: Outcome
    tail: str | None = None  # what filled a truncated reply: "whitespace", "loop" or "long"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    backend: str | None = None  # loragate's x-loragate-structured-backend
    latency_s: float
    detail: str = ""  # the violation, or the error message, shortened
    content: str = ""


def truncation_tail(text: str) -> str:
    """Why a reply ran to max_tokens: a run of whitespace, a repeated unit (a loop), or neither."""
    tail = text[-80:]
    if re.search(r"\s{16,}$", text) or (tail and sum(c.isspace() for c in tail) > 0.6 * len(tail)):
        return "whitespace"
    for unit in range(1, 21):  # the tail is one short unit repeated at least 3 times
        if len(tail) >= 3 * unit and re.fullmatch(rf"(?:{re.escape(tail[-unit:])})+", tail[-(len(tail) // unit) * unit:]):
            return "loop"
    return "long"


def classify(schema: dict[str, Any], response: httpx.Response) -> tuple[Outcome, str, str, int | None]:
    """(outcome, detail, content, completion tokens) of one reply."""
    if response.status_code != 200:
        try:
            message = response.json().get("error", {}).get("message", "")
        except ValueError:
            message = response.text
        return "error", f"{response.status_code}: {message[:200]}", "", None
    body = response.json()
    choice = body["choices"][0]
    content = choice["message"].get("content") or ""
    tokens = (body.get("usage") or {}).get("completion_tokens")
    if choice["finish_reason"] == "length":
        return "truncated", "", content, tokens
    try:
        value = json.loads(content)
        validator = jsonschema.validators.validator_for(schema)
        validator(schema, format_checker=validator.FORMAT_CHECKER).validate(value)
    except (ValueError, jsonschema.ValidationError) as exc:
        return "invalid", str(exc).splitlines()[0][:200], content, tokens
    return "valid", "", content, tokens


def ask(client: httpx.Client, model: str, server: str, name: str, spec: dict[str, Any], extra: dict[str, Any],
        max_tokens: int) -> Reply:
    body = {
        "model": model, "temperature": 0, "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": spec["prompt"]}],
        "response_format": {"type": "json_schema",
                            "json_schema": {"name": "reply", "schema": spec["schema"], "strict": True}},
    } | extra
    started = time.monotonic()
    try:
        response = client.post("/v1/chat/completions", json=body)
    except httpx.HTTPError as exc:
        return Reply(schema_name=name, server=server, status=0, outcome="error", latency_s=0.0, detail=repr(exc))
    outcome, detail, content, tokens = classify(spec["schema"], response)
    usage = (response.json().get("usage") or {}) if response.status_code == 200 else {}
    return Reply(schema_name=name, server=server, status=response.status_code, outcome=outcome,
                 tail=truncation_tail(content) if outcome == "truncated" else None, prompt_tokens=usage.get("prompt_tokens"), completion_tokens=tokens,
                 backend=response.headers.get("x-loragate-structured-backend"),
                 latency_s=round(time.monotonic() - started, 2), detail=detail, content=content[-3000:])


def summary(replies: list[Reply]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for server in dict.fromkeys(r.server for r in replies):
        mine = [r for r in replies if r.server == server]
        counts = Counter(r.outcome for r in mine) | Counter(f"truncated:{r.tail}" for r in mine if r.tail)
        out[server] = {"schemas": len(mine), **dict(sorted(counts.items()))}
    return out


def chart(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = ["valid", "invalid", "truncated:whitespace", "truncated:loop", "truncated:long", "error"]
    colours = ["#2a9d8f", "#e9c46a", "#8ab6d6", "#f4a261", "#c0c0c0", "#e76f51"]
    servers = list(result["summary"])
    fig, ax = plt.subplots(figsize=(8, 3.6))
    left = [0] * len(servers)
    for kind, colour in zip(kinds, colours):
        values = [result["summary"][s].get(kind, 0) for s in servers]
        ax.barh(servers, values, left=left, color=colour, label=kind)
        left = [a + b for a, b in zip(left, values)]
    ax.invert_yaxis()
    ax.set_xlabel(f"public schemas ({result['config']['schemas']}), strict, max_tokens {result['config']['max_tokens']}")
    ax.set_title("Structured-output coverage: loragate vs vLLM's server (same layout)")
    ax.legend(fontsize=7, ncol=3, loc="lower center", bbox_to_anchor=(0.5, -0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench_schemas", description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1,
                        help="1 (default): every reply is decoded alone, so the servers compare token for token "
                        "(in a batch, bf16 near-ties flip with the batch's make-up)")
    parser.add_argument("--limit", type=int, help="only the first N schemas (a quick check)")
    parser.add_argument("--schema", action="append", help="only these schemas (file stems; repeatable)")
    parser.add_argument("--legs", default=",".join(LEGS), help=f"which of {', '.join(LEGS)} (comma-separated)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR / "schemas")
    args = parser.parse_args(argv)
    legs = {name: LEGS[name] for name in args.legs.split(",")}

    files = [p for p in sorted(SCHEMAS.glob("*.json")) if not args.schema or p.stem in args.schema][: args.limit]
    specs = {path.stem: json.loads(path.read_text()) for path in files}
    opts = loragate_options()
    layout = resolve_layout(opts)
    same = peer_spec(layout, "same-layout", None)
    peers = {"vllm": same, "vllm-compact": same.model_copy(update={"args": same.args + COMPACT})}
    work = Path(tempfile.mkdtemp(prefix="loragate-schemas-"))
    (work / "sources").mkdir()
    machine = machine_info()
    replies: list[Reply] = []
    started = time.monotonic()
    processes = list(dict.fromkeys(process for process, _ in legs.values()))
    with fleet(processes, work, opts.model_dir, opts.served_model_name, work / "sources",
               peers) as servers:
        commands = dict(servers.commands)
        for server, (process, extra) in legs.items():
            servers.activate(process)
            with httpx.Client(base_url=servers.url(process), timeout=900) as client:
                def one(name: str, server: str = server, extra: dict[str, Any] = extra) -> Reply:
                    return ask(client, opts.served_model_name, server, name, specs[name], extra, args.max_tokens)

                def report(done: int, total: int, name: str, reply: Reply, server: str = server) -> None:
                    progress(f"{server} {done}/{total} {name}: {reply.outcome}{f' ({reply.tail})' if reply.tail else ''}")

                replies += run_pool(list(specs), args.concurrency, one, report)
    result = {
        "machine": machine, "command": " ".join([sys.executable, "-m", "loadtests.bench_schemas", *(argv or sys.argv[1:])]),
        "config": {"schemas": len(specs), "max_tokens": args.max_tokens, "temperature": 0, "strict": True,
                   "concurrency": args.concurrency, "model": opts.served_model_name, "legs": {
                       k: {"server": p, "request_extra": e} for k, (p, e) in legs.items()},
                   "run_s": round(time.monotonic() - started, 1)},
        "servers": commands, "summary": summary(replies),
        "by_schema": {name: {r.server: r.model_dump(exclude={"schema_name", "server"}) for r in replies
                             if r.schema_name == name} for name in specs},
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "schemas.json").write_text(json.dumps(result, indent=1) + "\n")
    chart(result, args.out_dir / "schemas.png")
    print(json.dumps(result["summary"], indent=1))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
