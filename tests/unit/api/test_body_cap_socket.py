"""The body cap over a real socket: the real app (keyed, a stand-in engine) under a real uvicorn on
loopback, started in this process, driven byte by byte. What a client gets for a body over
`--max-body-bytes` (README, "Limits"):

- announced by Content-Length: a 413 `payload_too_large` as soon as the headers are read, before
  any byte of the body (with `Expect: 100-continue` no `100 Continue` comes first, so such a client
  sends nothing); a client that sends the whole body anyway still reads that 413 afterwards, and
  its connection stays usable (the server reads and drops the rest of the body);
- sent chunked (Transfer-Encoding: chunked, no length announced): the same 413 as soon as the
  chunks read cross the cap, while the client is still sending, and the same afterwards for a
  client that sends to the end.

Both of uvicorn's HTTP implementations are checked: httptools (what `loragate serve` picks when it
is installed) and h11.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn
from prometheus_client import CollectorRegistry

from service.api.app import create_app
from service.api.deps import Services
from service.config import Settings
from service.generation import GenerationLimits, GenerationService
from service.observability.metrics import Metrics
from service.routing import ModelRouter
from tests.unit.api.test_validation import MODEL, StubEngine

API_KEY, ADMIN_KEY = "api-key-0123456789abcdef", "admin-key-0123456789abcdef"
LIMIT = 64 * 1024
BIG = 64 * 2**20  # the 64 MiB of issue 30
CHUNK = 64 * 1024
POST = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {API_KEY}\r\n"
        "Content-Type: application/json\r\n").encode()


@dataclass
class Served:
    port: int
    metrics: Metrics

    def refusals(self) -> float:
        value = self.metrics.registry.get_sample_value("loragate_rejected_requests_total", {"reason": "body_too_large"})
        return value or 0.0

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=30)


@pytest.fixture(scope="module", params=["httptools", "h11"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with pytest.MonkeyPatch.context() as env:
        for name in ("API_KEYS", "API_KEYS_FILE", "ADMIN_KEYS", "ADMIN_KEYS_FILE", "AUTH_DISABLED", "MAX_BODY_BYTES"):
            env.delenv(f"LORAGATE_{name}", raising=False)
        settings = Settings(model=tmp_path_factory.mktemp("model"), served_model_name=MODEL,  # type: ignore[call-arg]
                            api_keys=[API_KEY], admin_keys=[ADMIN_KEY], max_body_bytes=LIMIT)
    engine, metrics, router = StubEngine(), Metrics(CollectorRegistry()), ModelRouter(MODEL)
    limits = GenerationLimits(max_model_len=256, max_tokens_limit=64, max_n=2)
    generation = GenerationService(engine, router, metrics, limits)  # type: ignore[arg-type]
    services = Services(settings=settings, engine=engine, registry=None, router=router,  # type: ignore[arg-type]
                        metrics=metrics, generation=generation)
    # As `loragate serve` configures uvicorn (service/api/server.py), on a free loopback port.
    config = uvicorn.Config(create_app(settings, services), host="127.0.0.1", port=0, http=request.param,
                            log_config=None, access_log=False, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield Served(server.servers[0].sockets[0].getsockname()[1], metrics)
    finally:
        server.should_exit = True
        thread.join(30)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response (status, lower-cased headers, body by Content-Length)."""
    reader = sock.makefile("rb")
    status = int(reader.readline().split()[1])
    headers = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, value = line.decode("latin-1").split(":", 1)
        headers[name.strip().lower()] = value.strip()
    return status, headers, reader.read(int(headers.get("content-length", "0")))


def assert_413(response: tuple[int, dict[str, str], bytes]) -> dict:
    status, headers, body = response
    assert status == 413, (status, body[:300])
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["code"] == "payload_too_large" and error["type"] == "invalid_request_error", error
    assert str(LIMIT) in error["message"]
    return error


def the_connection_still_serves(sock: socket.socket) -> None:
    sock.sendall(f"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {API_KEY}\r\n\r\n".encode())
    status, _, body = read_response(sock)
    assert status == 200 and json.loads(body)["data"][0]["id"] == MODEL


def chunk(size: int) -> bytes:
    return b"%x\r\n" % size + b"a" * size + b"\r\n"


@pytest.mark.parametrize("expect_continue", [False, True], ids=["plain", "expect-100-continue"])
def test_a_length_over_the_cap_is_413_before_any_body_byte(served: Served, expect_continue: bool) -> None:
    before = served.refusals()
    with served.connect() as sock:
        expect = b"Expect: 100-continue\r\n" if expect_continue else b""
        sock.sendall(POST + b"Content-Length: %d\r\n" % BIG + expect + b"\r\n")  # headers only
        assert_413(read_response(sock))  # the first response: no "100 Continue" before it
    assert served.refusals() == before + 1


def test_a_client_that_sends_the_whole_announced_body_still_reads_the_413(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(POST + b"Content-Length: %d\r\n\r\n" % BIG)
        block = b"a" * (1024 * 1024)
        for _ in range(BIG // len(block)):
            sock.sendall(block)  # the server reads and drops it: no reset
        assert_413(read_response(sock))
        the_connection_still_serves(sock)


def test_a_chunked_body_over_the_cap_is_the_same_413_while_it_is_still_sent(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(POST + b"Content-Length: %d\r\n\r\n" % BIG)
        announced = assert_413(read_response(sock))
    before = served.refusals()
    with served.connect() as sock:
        sock.sendall(POST + b"Transfer-Encoding: chunked\r\n\r\n")
        sent = 0
        while not select.select([sock], [], [], 0.005)[0]:  # send until the answer is there
            assert sent < 16 * 2**20, "no answer after 16 MiB: the body was read past the cap"
            sock.sendall(chunk(CHUNK))
            sent += CHUNK
        assert sent > LIMIT  # refused only once the cap was crossed, the last chunk never sent
        assert assert_413(read_response(sock)) == announced
    assert served.refusals() == before + 1


def test_a_chunked_body_sent_to_the_end_still_reads_the_413(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(POST + b"Transfer-Encoding: chunked\r\n\r\n")
        block = chunk(CHUNK) * 16
        for _ in range(BIG // (16 * CHUNK)):
            sock.sendall(block)
        sock.sendall(b"0\r\n\r\n")
        assert_413(read_response(sock))
        the_connection_still_serves(sock)


def test_a_chunked_body_within_the_cap_reaches_the_route(served: Served) -> None:
    """The cap counts chunked bytes, nothing else: a small chunked body is read and validated."""
    payload = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10**6})
    with served.connect() as sock:
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload.encode())
        sock.sendall(POST + b"Transfer-Encoding: chunked\r\n\r\n" + body)
        status, _, body = read_response(sock)
    assert status == 400 and json.loads(body)["error"]["param"] == "max_tokens", body  # the route's own check

