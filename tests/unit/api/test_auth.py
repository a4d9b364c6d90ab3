"""API-key authentication (service/api/auth.py, service/api/keys.py) on a small app whose routers
declare their keys as the real ones do: who gets in, which path variants are caught, key files, and
the settings the service refuses to start with."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
from pathlib import Path
from urllib.parse import unquote

import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.testclient import TestClient
from starlette.middleware import Middleware

from service.api import keys
from service.api.auth import Auth, KeyMiddleware, normalise_path, require_admin, require_api_key, require_metrics_key
from service.api.errors import install_error_handlers
from service.api.keys import AuthConfigError, Role, key_ring_for
from service.cli import serve
from service.config import CONFIG_FILE_ENV, Settings

API_KEY = "api-key-0123456789abcdef"
ADMIN_KEY = "admin-key-0123456789abcdef"
API_ID = hashlib.sha256(API_KEY.encode()).hexdigest()[:8]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come only from the test, not from the developer's shell."""
    for name in ("API_KEYS", "API_KEYS_FILE", "ADMIN_KEYS", "ADMIN_KEYS_FILE", "AUTH_DISABLED",
                 "ALLOW_INSECURE_BIND", "METRICS_REQUIRE_KEY", "HOST"):
        monkeypatch.delenv(f"LORAGATE_{name}", raising=False)
    monkeypatch.delenv(CONFIG_FILE_ENV, raising=False)


def keyed(**options: object) -> Settings:
    return Settings(**{"api_keys": [API_KEY], "admin_keys": [ADMIN_KEY], **options})  # type: ignore[arg-type]


def make_app(settings: Settings, key_middleware: bool = True) -> FastAPI:
    """`key_middleware=False`: the routers' dependencies alone."""
    auth = Auth.from_settings(settings)
    app = FastAPI(middleware=[Middleware(KeyMiddleware, auth=auth)] if key_middleware else [])
    app.state.auth = auth
    install_error_handlers(app)

    def whoami(request: Request) -> dict:
        return {"key_id": request.state.key_id, "key_role": request.state.key_role}

    routers = [  # as in the real app: /v1 needs a key, /admin an admin key, probes nothing
        (APIRouter(dependencies=[Depends(require_api_key)]), ["/v1/models"]),
        (APIRouter(prefix="/admin", dependencies=[Depends(require_admin)]), ["/adapters", "/adapters/{name}"]),
        (APIRouter(), ["/health/live", "/health/ready"]),
        (APIRouter(dependencies=[Depends(require_metrics_key)]), ["/metrics"]),
    ]
    for router, paths in routers:
        for path in paths:
            router.add_api_route(path, whoami, methods=["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"],
                                 include_in_schema=False)
        app.include_router(router)
    return app


@pytest.fixture()
def client() -> TestClient:
    return TestClient(make_app(keyed()))


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def assert_401(response) -> None:  # noqa: ANN001
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json() == {"error": {"message": response.json()["error"]["message"],
                                         "type": "invalid_request_error", "param": None,
                                         "code": "invalid_api_key"}}


# ------------------------------------------------------------------ who gets in
def test_missing_key_is_401(client: TestClient) -> None:
    response = client.get("/v1/models")
    assert_401(response)
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in response.json()["error"]["message"]


@pytest.mark.parametrize("header", [
    f"Bearer {API_KEY[:-1]}",  # a prefix of a real key
    f"Bearer {API_KEY}x",  # a real key plus more
    f"Bearer {API_KEY.upper()}",
    "Bearer ",
    "Bearer",
    f"Basic {API_KEY}",
    f"Token {API_KEY}",
    API_KEY,  # no scheme
    f"Bearer {API_KEY} {API_KEY}",
    "Bearer " + "x" * 5000,
])
def test_wrong_keys_are_401(client: TestClient, header: str) -> None:
    response = client.get("/v1/models", headers={"authorization": header})
    assert_401(response)
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert API_KEY not in response.text


def test_two_authorization_headers_are_401(client: TestClient) -> None:
    headers = [("authorization", f"Bearer {API_KEY}"), ("authorization", f"Bearer {ADMIN_KEY}")]
    assert_401(client.get("/v1/models", headers=headers))


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_scheme_is_case_insensitive(client: TestClient, scheme: str) -> None:
    response = client.get("/v1/models", headers={"authorization": f"{scheme}  {API_KEY} "})
    assert response.status_code == 200
    assert response.json() == {"key_id": API_ID, "key_role": "api"}


def test_api_key_on_admin_is_403(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="service.api.auth"):
        response = client.get("/admin/adapters", headers=bearer(API_KEY))
    assert response.status_code == 403
    assert response.json()["error"] | {"message": ""} == {
        "message": "", "type": "invalid_request_error", "param": None, "code": "insufficient_permissions"}
    assert API_ID in caplog.text and API_KEY not in caplog.text


def test_admin_key_works_on_both(client: TestClient) -> None:
    for path in ("/v1/models", "/admin/adapters", "/admin/adapters/x"):
        response = client.get(path, headers=bearer(ADMIN_KEY))
        assert response.status_code == 200, path
        assert response.json()["key_role"] == "admin"


# ------------------------------------------------------------------ paths
def call(app: FastAPI, target: str, method: str = "GET", headers: dict[str, str] | None = None) -> int:
    """Send one request as uvicorn would pass it: `raw_path` as received, `path` percent-decoded
    once (test clients would clean `..` and `//` up before sending)."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": unquote(target), "raw_path": target.encode(), "root_path": "", "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
    }
    messages: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        messages.append(message)

    asyncio.run(app(scope, receive, send))
    return next(m["status"] for m in messages if m["type"] == "http.response.start")


ADMIN_VARIANTS = [
    "/admin/adapters", "//admin/adapters", "/admin//adapters", "/admin/../admin/adapters", "/v1/../admin/adapters",
    "/./admin/adapters", "/%61dmin/adapters", "/%2561dmin/adapters", "/admin%2Fadapters", "/admin%252Fadapters",
    "/admin/adapters/", "/v1/%2e%2e/admin/adapters", "/v1/%252e%252e/admin/adapters",
    "/health/live/../../admin/adapters", "/v1\\..\\admin\\adapters", "/../../admin/adapters", "/admin",
]


@pytest.mark.parametrize("target", ADMIN_VARIANTS)
def test_admin_path_variants_need_an_admin_key(target: str) -> None:
    app = make_app(keyed())
    assert call(app, target) == 401
    assert call(app, target, headers=bearer(API_KEY)) == 403
    assert call(app, target, headers=bearer(ADMIN_KEY)) != 401


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH", "TRACE"])
def test_every_method_is_checked(method: str) -> None:
    app = make_app(keyed())
    for target in ("/admin/adapters", "/admin/adapters/x", "//admin/adapters", "/v1/../admin/adapters"):
        assert call(app, target, method) == 401, (method, target)
        assert call(app, target, method, bearer(API_KEY)) == 403, (method, target)
    assert call(app, "/v1/models", method) == 401


@pytest.mark.parametrize("target", ["/ADMIN/adapters", "/Admin/adapters", "/nope", "/", "/v1", "/v2/models",
                                    "/health", "/health/live/", "/health//live", "/metrics/x"])
def test_unknown_paths_need_a_key(target: str) -> None:
    app = make_app(keyed())
    assert call(app, target) == 401
    # a key does not make them admin paths: the router answers (404 or a slash redirect)
    assert call(app, target, headers=bearer(API_KEY)) in (200, 307, 404)


@pytest.mark.parametrize("target", ["/admin/adapters", "/%61dmin/adapters", "/admin%2Fadapters", "/admin/adapters/x"])
def test_the_routers_dependencies_alone_guard_their_routes(target: str) -> None:
    # Without the middleware, what a router declares is still enforced: by construction, not by path.
    app = make_app(keyed(), key_middleware=False)
    assert call(app, target) == 401
    assert call(app, target, headers=bearer(API_KEY)) == 403
    assert call(app, target, headers=bearer(ADMIN_KEY)) == 200
    assert call(app, "/v1/models") == 401 and call(app, "/v1/models", headers=bearer(API_KEY)) == 200


def test_normalise_path() -> None:
    assert normalise_path("//a/./b/../c/") == "/a/c"
    assert normalise_path("/%2561dmin%252Fx") == "/admin/x"
    assert normalise_path("/../..") == "/"
    assert normalise_path("") == "/"


# ------------------------------------------------------------------ open paths
def test_health_and_docs_are_open(client: TestClient) -> None:
    for path in ("/health/live", "/health/ready", "/openapi.json", "/docs"):
        assert client.get(path).status_code == 200, path
        assert client.get(path, headers=bearer("not-a-key")).status_code == 200, path
    assert client.get("/health/live").json() == {"key_id": None, "key_role": None}
    assert client.head("/health/ready").status_code == 200
    assert call(client.app, "/%68ealth/live") == 200  # what the router sees is /health/live


def test_metrics_open_by_default_or_keyed() -> None:
    assert TestClient(make_app(keyed())).get("/metrics").status_code == 200
    keyed_metrics = TestClient(make_app(keyed(metrics_require_key=True)))
    assert_401(keyed_metrics.get("/metrics"))
    assert keyed_metrics.get("/metrics", headers=bearer(API_KEY)).status_code == 200
    assert keyed_metrics.get("/metrics", headers=bearer(ADMIN_KEY)).status_code == 200


def test_websocket_without_key_is_closed() -> None:
    app = make_app(keyed())
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "websocket.connect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/v1/ws", "raw_path": b"/v1/ws", "root_path": "", "headers": [],
             "query_string": b""}
    asyncio.run(app(scope, receive, send))
    assert sent == [{"type": "websocket.close", "code": 1008}]


# ------------------------------------------------------------------ keys
def test_only_digests_are_kept_and_every_one_is_compared(monkeypatch: pytest.MonkeyPatch) -> None:
    ring = keys.load_key_ring(keyed(api_keys=[API_KEY, "second-key-0123456789"]))
    assert len(ring) == 3
    assert all(API_KEY not in repr(entry) and API_KEY.encode() not in entry.digest for entry in ring.entries)
    calls: list[int] = []
    real = hmac.compare_digest
    monkeypatch.setattr(keys.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    assert ring.lookup(API_KEY).key_id == API_ID  # the first entry matches: the others are compared anyway
    assert len(calls) == 3
    assert ring.lookup("nope") is None and len(calls) == 6


def test_keys_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# team keys\n\n  ci:ci-key-0123456789abcdef  \nplain-key-0123456789abcdef\n   # indented\n")
    admin = tmp_path / "admin"
    admin.write_text("ops:ops-key-0123456789abcdef\nci-key-0123456789abcdef\n")
    keys.chmod(0o600)
    admin.chmod(0o600)
    ring = key_ring_for(Settings(api_keys_file=keys, admin_keys_file=admin))
    assert ring is not None
    found = {name: ring.lookup(key) for name, key in (("ci", "ci-key-0123456789abcdef"),
                                                       ("plain", "plain-key-0123456789abcdef"),
                                                       ("ops", "ops-key-0123456789abcdef"))}
    assert found["ci"].key_id == "ci" and found["ci"].role is Role.ADMIN  # listed in both: the higher role
    assert found["plain"].key_id == hashlib.sha256(b"plain-key-0123456789abcdef").hexdigest()[:8]
    assert found["plain"].role is Role.API
    assert found["ops"].key_id == "ops" and found["ops"].role is Role.ADMIN
    assert ring.lookup("# team keys") is None and ring.lookup("ci") is None
    client = TestClient(make_app(Settings(api_keys_file=keys, admin_keys_file=admin)))
    assert client.get("/admin/adapters", headers=bearer("ops-key-0123456789abcdef")).json()["key_id"] == "ops"


@pytest.mark.parametrize(("text", "error"), [
    ("bad id:key-0123456789abcdef\n", "key id"),
    (":key-0123456789abcdef\n", "key id"),
    ("two words\n", "printable ASCII"),
    ("ok:\n", "empty key"),
    ("k\u00e9y-0123456789abcdef\n", "printable ASCII"),
    ("a:key-one-0123456789abcdef\na:key-two-0123456789abcdef\n", "a name more than one key"),
])
def test_bad_keys_files_are_refused(tmp_path: Path, text: str, error: str) -> None:
    keys = tmp_path / "keys"
    keys.write_text(text)
    with pytest.raises(AuthConfigError, match=error):
        key_ring_for(Settings(api_keys_file=keys))


def test_missing_keys_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError, match="cannot read api_keys_file"):
        key_ring_for(Settings(api_keys_file=tmp_path / "absent"))


def test_weak_keys_files_are_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    keys = tmp_path / "keys"
    keys.write_text("short\n")
    keys.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="service.api.keys"):
        key_ring_for(Settings(api_keys_file=keys))
    assert "readable by every user" in caplog.text and "shorter than 16" in caplog.text
    assert "short\n" not in caplog.text


def test_keys_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORAGATE_API_KEYS", f'["{API_KEY}"]')
    monkeypatch.setenv("LORAGATE_ADMIN_KEYS", f'["{ADMIN_KEY}"]')
    settings = Settings()
    assert API_KEY not in repr(settings)
    ring = key_ring_for(settings)
    assert ring is not None and ring.count(Role.API) == 1 and ring.count(Role.ADMIN) == 1


# ------------------------------------------------------------------ start-up
def test_no_keys_refuses_to_start() -> None:
    with pytest.raises(AuthConfigError, match="no API keys configured.*LORAGATE_AUTH_DISABLED=true"):
        key_ring_for(Settings())
    with pytest.raises(AuthConfigError):
        Auth.from_settings(Settings())
    from service.api.app import create_app

    with pytest.raises(AuthConfigError):
        create_app(Settings())


def test_keys_with_auth_disabled_are_refused() -> None:
    with pytest.raises(AuthConfigError, match="keys are configured too"):
        key_ring_for(keyed(auth_disabled=True))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "example.com"])
def test_auth_disabled_on_a_public_host_is_refused(host: str) -> None:
    with pytest.raises(AuthConfigError, match="LORAGATE_ALLOW_INSECURE_BIND=true"):
        key_ring_for(Settings(auth_disabled=True, host=host))
    assert key_ring_for(Settings(auth_disabled=True, host=host, allow_insecure_bind=True)) is None


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"])
def test_auth_disabled_on_loopback_is_allowed(host: str) -> None:
    assert key_ring_for(Settings(auth_disabled=True, host=host)) is None


def test_auth_disabled_lets_everything_through_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="service.api.auth"):
        client = TestClient(make_app(Settings(auth_disabled=True)))
    assert "authentication is DISABLED" in caplog.text
    assert client.get("/admin/adapters").json() == {"key_id": None, "key_role": None}
    assert client.get("/v1/models").status_code == 200


@pytest.mark.parametrize(("argv", "message"), [
    ([], "no API keys configured"),
    (["--host", "0.0.0.0", "--auth-disabled"], "refusing to listen on 0.0.0.0"),
])
def test_serve_refuses_to_start(argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    def must_not_run(*_: object) -> None:
        raise AssertionError("serve went on to prepare the model")

    monkeypatch.setattr(serve, "_prepare_if_default", must_not_run)
    monkeypatch.setattr(serve, "configure_logging", lambda *_: None, raising=False)  # leave pytest's handlers be
    handlers, level = logging.root.handlers[:], logging.root.level
    try:
        assert serve.run(argv) == 2
    finally:
        logging.root.handlers[:], logging.root.level = handlers, level
    assert message in capsys.readouterr().err


def test_the_real_app_is_protected(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry

    from service.api.app import create_app
    from service.api.deps import Services
    from service.generation import GenerationLimits, GenerationService
    from service.observability.metrics import Metrics
    from service.routing import ModelRouter
    from tests.unit.api.test_validation import MODEL, StubEngine

    settings = keyed(model=tmp_path, served_model_name=MODEL)
    engine, metrics, router = StubEngine(), Metrics(CollectorRegistry()), ModelRouter(MODEL)
    services = Services(  # type: ignore[arg-type]
        settings=settings, engine=engine, registry=None, router=router, metrics=metrics,
        generation=GenerationService(engine, router, metrics, GenerationLimits(max_model_len=256, max_tokens_limit=64, max_n=2)),
    )
    with TestClient(create_app(settings, services)) as http:
        assert http.get("/health/live").status_code == 200
        assert http.get("/metrics").status_code == 200
        assert_401(http.get("/v1/models"))
        assert_401(http.post("/v1/chat/completions", json={}))
        assert http.get("/v1/models", headers=bearer(API_KEY)).status_code == 200
        assert http.get("/admin/adapters", headers=bearer(API_KEY)).status_code == 403
        assert_401(http.get("/admin/routes"))
        assert metrics.rejected.labels(reason="unauthenticated")._value.get() == 3
        assert metrics.rejected.labels(reason="forbidden")._value.get() == 1
        # Refused before the body is read: a client without a key learns nothing about its body.
        assert_401(http.post("/v1/chat/completions", content=b'{"model": ', headers={"content-type": "application/json"}))
        assert_401(http.post("/v1/completions", content=b"x" * (settings.limits.max_body_bytes + 1)))
        assert http.post("/v1/completions", content=b"x" * (settings.limits.max_body_bytes + 1),
                         headers=bearer(API_KEY)).status_code == 413


OPEN_ROUTES = {"/health/live", "/health/ready", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def test_every_route_of_the_app_declares_its_key() -> None:
    """Deny by default for routes: each one declares a key, or is one of the few open on purpose."""
    from starlette.routing import Route

    from service.api.app import create_app
    from service.api.auth import KeyRequirement, declared_role

    app = create_app(keyed())
    for route in app.routes:
        assert isinstance(route, Route)
        declared = [d.call for d in getattr(getattr(route, "dependant", None), "dependencies", [])
                    if isinstance(d.call, KeyRequirement)]
        if route.path in OPEN_ROUTES:
            assert route.path == "/metrics" or not declared, route.path
        else:
            assert declared, f"{route.path} declares no key: add the router's requirement (auth.py)"
        expected = Role.ADMIN if route.path.startswith("/admin/") else Role.OPEN if route.path in OPEN_ROUTES else Role.API
        assert declared_role(route, app.state.auth) is expected, route.path
    assert declared_role(next(r for r in app.routes if r.path == "/metrics"),
                         Auth.from_settings(keyed(metrics_require_key=True))) is Role.API


def test_the_app_keeps_only_digests_of_the_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    from service.api.app import create_app

    monkeypatch.setenv("LORAGATE_API_KEYS", f'["{API_KEY}"]')
    monkeypatch.setenv("loragate_auth__admin_keys", f'["{ADMIN_KEY}"]')
    settings = Settings()
    assert settings.auth.api_keys == [API_KEY] and settings.auth.admin_keys == [ADMIN_KEY]
    app = create_app(settings, services=object())  # type: ignore[arg-type] - the lifespan never runs
    assert settings.auth.api_keys == [] and settings.auth.admin_keys == []
    assert not {name for name in os.environ if name.upper() in keys.RAW_KEY_VARIABLES}
    assert app.state.auth.ring.lookup(API_KEY) is not None  # the digests still admit the keys
    assert app.state.auth.ring.lookup(ADMIN_KEY).role is Role.ADMIN
