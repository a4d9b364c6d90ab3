"""The admin API and the OpenAI endpoints over remote adapters: `uri` registration, `PATCH` pins,
residency in the listing, and a chat request for an unknown name resolved on first use (a real
registry and store, fake engine and store filesystems, no vLLM)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from service.adapters.remote import AdapterResolver
from service.config import Settings
from service.engine import GenerationDelta, GenerationUpdate
from service.generation import GenerationLimits, GenerationService
from service.routing import ModelRouter
from tests.support.fake_stores import FakeStore, install, put_folder
from tests.support.registry_harness import make_registry
from tests.unit.api.test_validation import MODEL, StubEngine

CHAT = "/v1/chat/completions"
MSG = [{"role": "user", "content": "hi"}]


class ReplyingEngine(StubEngine):
    async def generate(self, prompt_ids, sampling, adapter=None, request_id=None, priority=0,  # noqa: ANN001
                       cache_salt=None):
        self.generate_calls += 1
        self.adapters = [*getattr(self, "adapters", []), adapter.name if adapter else None]
        yield GenerationUpdate(deltas=[GenerationDelta(index=0, text="ok", token_count=1, finish_reason="stop")],
                               prompt_tokens=len(prompt_ids))


@pytest.fixture()
def gs(monkeypatch: pytest.MonkeyPatch, adapter_root: Path) -> type[FakeStore]:
    store = install(monkeypatch, "gs")
    for name in ("one", "two"):
        put_folder(store, f"bucket/adapters/{name}", adapter_root / name)
    return store


@pytest.fixture()
def client(tmp_path: Path, tiny_model_dir: Path, adapter_root: Path, gs) -> Iterator[tuple[TestClient, ReplyingEngine]]:
    from service.api.app import create_app
    from service.api.deps import Services

    settings = Settings(model=tmp_path, served_model_name=MODEL, auth_disabled=True)
    registry, _ = make_registry(tmp_path / "store", tiny_model_dir, [adapter_root], max_pinned=1)
    engine = ReplyingEngine()
    router = ModelRouter(MODEL, adapters=registry)
    resolver = AdapterResolver(registry, "gs://bucket/adapters", 60.0, schemes=["gs"])
    generation = GenerationService(engine, router, registry.metrics, GenerationLimits(max_model_len=256,
                                   max_tokens_limit=16, max_n=1), resolver=resolver)
    services = Services(settings=settings, engine=engine, registry=registry, router=router,  # type: ignore[arg-type]
                        metrics=registry.metrics, generation=generation)
    with TestClient(create_app(settings, services)) as http:
        yield http, engine
    registry.replicas.close()


def test_register_by_uri_pin_and_list(client) -> None:
    http, _ = client
    created = http.post("/admin/adapters", json={"name": "alpha", "uri": "gs://bucket/adapters/one/", "pinned": True})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["pinned"] is True and body["origin"]["uri"] == "gs://bucket/adapters/one/"
    assert body["origin"]["versions"]["adapter_model.safetensors"] == {"generation": "7"}
    patched = http.patch("/admin/adapters/alpha", json={"pinned": False})
    assert patched.status_code == 200 and patched.json()["pinned"] is False
    [status] = http.get("/admin/adapters").json()["data"]
    assert status["resident"] is True and status["load_count"] >= 1 and status["last_used"] is None
    assert http.patch("/admin/adapters/none", json={"pinned": True}).status_code == 404


@pytest.mark.parametrize(("body", "status", "code", "param"), [
    ({"name": "a", "uri": "gs://bucket/adapters/none/"}, 404, "adapter_source_not_found", "uri"),
    ({"name": "a", "uri": "ftp://bucket/x/"}, 400, "adapter_uri_not_allowed", "uri"),
    ({"name": "a", "uri": "gs://bucket/x/", "path": "one"}, 400, None, None),
    ({"name": "a"}, 400, None, None),
])
def test_refusals_are_openai_errors(client, body, status, code, param) -> None:
    http, _ = client
    response = http.post("/admin/adapters", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if code is not None:
        assert (error["code"], error["param"]) == (code, param)


def test_an_unreachable_store_is_a_424_not_a_500(client, gs) -> None:
    http, _ = client
    gs.fail_with = ConnectionError("Could not connect to the endpoint URL")
    response = http.post("/admin/adapters", json={"name": "a", "uri": "gs://bucket/adapters/one/"})
    assert response.status_code == 424
    assert response.json()["error"]["code"] == "adapter_store_unreachable"
    assert "Could not connect" in response.json()["error"]["message"]


def test_an_unknown_model_is_resolved_on_first_use_and_served(client) -> None:
    http, engine = client
    reply = http.post(CHAT, json={"model": "two", "messages": MSG, "max_tokens": 4})
    assert reply.status_code == 200, reply.text
    assert engine.adapters == ["two"]
    assert "two" in [m["id"] for m in http.get("/v1/models").json()["data"]]
    missing = http.post(CHAT, json={"model": "ghost", "messages": MSG, "max_tokens": 4})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
