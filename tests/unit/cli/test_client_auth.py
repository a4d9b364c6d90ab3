"""The client commands send the configured key: admin commands prefer $LORAGATE_ADMIN_KEY, the
/v1 ones $LORAGATE_API_KEY; no key, no header."""

from __future__ import annotations

import httpx
import pytest

from service.cli import adapters, evaluate, routes
from service.cli.client_auth import key_from_env

REAL_CLIENT = httpx.Client


@pytest.fixture(autouse=True)
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LORAGATE_API_KEY", raising=False)
    monkeypatch.delenv("LORAGATE_ADMIN_KEY", raising=False)


def test_key_from_env_order(monkeypatch: pytest.MonkeyPatch) -> None:
    assert key_from_env(admin=True) is None and key_from_env(admin=False) is None
    monkeypatch.setenv("LORAGATE_API_KEY", "api")
    assert key_from_env(admin=True) == "api" and key_from_env(admin=False) == "api"
    monkeypatch.setenv("LORAGATE_ADMIN_KEY", "admin")
    assert key_from_env(admin=True) == "admin" and key_from_env(admin=False) == "api"


def capture_adapters_cli(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> list[httpx.Request]:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"object": "list", "data": []})

    monkeypatch.setattr(adapters.httpx, "Client",
                        lambda **kw: REAL_CLIENT(transport=httpx.MockTransport(answer), **kw))
    assert adapters.run(argv) == 0
    return seen


def test_adapters_cli_sends_the_admin_key(monkeypatch: pytest.MonkeyPatch) -> None:
    (request,) = capture_adapters_cli(monkeypatch, ["list"])
    assert "authorization" not in request.headers
    monkeypatch.setenv("LORAGATE_API_KEY", "api")
    monkeypatch.setenv("LORAGATE_ADMIN_KEY", "admin")
    (request,) = capture_adapters_cli(monkeypatch, ["list"])
    assert request.headers["authorization"] == "Bearer admin"
    (request,) = capture_adapters_cli(monkeypatch, ["--api-key", "flag", "list"])
    assert request.headers["authorization"] == "Bearer flag"


def test_routes_cli_prefers_the_admin_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORAGATE_API_KEY", "api")
    monkeypatch.setenv("LORAGATE_ADMIN_KEY", "admin")
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"object": "list", "data": []})

    assert routes.run(["list", "--json"], transport=httpx.MockTransport(answer)) == 0
    assert seen[0].headers["authorization"] == "Bearer admin"


def test_eval_defaults_to_the_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORAGATE_ADMIN_KEY", "admin")
    assert evaluate._parser().parse_args(["--dataset", "x"]).api_key == "admin"
    monkeypatch.setenv("LORAGATE_API_KEY", "api")
    assert evaluate._parser().parse_args(["--dataset", "x"]).api_key == "api"
