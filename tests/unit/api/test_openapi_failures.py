"""The OpenAPI document states every error response each operation can give, with the error schema
and headers of FAILURE_TABLE: checked against an independent list of what each operation can
answer, and against every row of the table provoked through the real app (test_failure_table)."""

from __future__ import annotations

import re

import pytest

from service.api.app import create_app
from service.config import Settings
from service.errors import FAILURE_TABLE
from tests.unit.api.test_failure_table import NOT_PROVOKED, PROVOKE, Harness, harness  # noqa: F401 - fixture

ERROR = {"$ref": "#/components/schemas/ErrorResponse"}
# The layers of every keyed operation: 401, drain 503, a bug's 500; any input: 400; any body: 413.
KEYED, ADMIN = {401, 500, 503}, {401, 403, 500, 503}
GENERATION = KEYED | {400, 404, 409, 413, 424, 429, 502, 504}
EXPECTED: dict[tuple[str, str], set[int]] = {
    ("GET", "/health/live"): {500, 503},
    ("GET", "/health/ready"): {500, 503},
    ("GET", "/metrics"): {500},
    ("GET", "/v1/models"): KEYED,
    ("GET", "/v1/stats"): KEYED | {400},
    ("POST", "/v1/chat/completions"): GENERATION,
    ("POST", "/v1/completions"): GENERATION,
    ("POST", "/v1/tickets/triage"): GENERATION,
    ("POST", "/v1/tickets/triage/batch"): GENERATION,
    ("GET", "/v1/tickets/triage/schema"): KEYED,
    ("GET", "/admin/adapters"): ADMIN,
    ("POST", "/admin/adapters"): ADMIN | {400, 404, 409, 413, 424},
    ("PUT", "/admin/adapters/{name}"): ADMIN | {400, 409, 413, 415},
    ("PATCH", "/admin/adapters/{name}"): ADMIN | {400, 404, 409, 413},
    ("GET", "/admin/adapters/{name}"): ADMIN | {400, 404},
    ("DELETE", "/admin/adapters/{name}"): ADMIN | {400, 404, 409, 413},
    ("GET", "/admin/routes"): ADMIN,
    ("PUT", "/admin/routes/{name}"): ADMIN | {400, 404, 409, 413},
    ("PATCH", "/admin/routes/{name}"): ADMIN | {400, 404, 409, 413},
    ("GET", "/admin/routes/{name}"): ADMIN | {400, 404},
    ("DELETE", "/admin/routes/{name}"): ADMIN | {400, 404, 409, 413},
    ("POST", "/admin/routes/{name}/rollout"): ADMIN | {400, 404, 409, 413},
    ("POST", "/admin/routes/{name}/rollout/{action}"): ADMIN | {400, 404, 409, 413},
    ("POST", "/admin/routes/{name}/gate-reports"): ADMIN | {400, 404, 409, 413},
    ("GET", "/admin/routes/{name}/gate-reports/{report_id}"): ADMIN | {400, 404},
    ("GET", "/admin/routes/{name}/report"): ADMIN | {400, 404, 424},
}


def document(**settings: object) -> dict:
    return create_app(Settings(auth_disabled=True, **settings)).openapi()  # type: ignore[arg-type]


def operations(doc: dict) -> dict[tuple[str, str], dict]:
    return {(method.upper(), path): op for path, ops in doc["paths"].items() for method, op in ops.items()}


def error_statuses(op: dict) -> set[int]:
    return {int(status) for status in op["responses"] if int(status) >= 400}


def test_every_operation_lists_the_statuses_it_can_give() -> None:
    ops = operations(document())
    assert set(ops) == set(EXPECTED), "a new operation: say here what it can answer"
    for key, op in ops.items():
        assert error_statuses(op) == EXPECTED[key], key
        for status, response in op["responses"].items():
            assert status not in ("422", "499")  # validation is 400; a client that left gets nothing
            if int(status) >= 400 and not key[1].startswith("/health"):
                assert response["content"] == {"application/json": {"schema": ERROR}}, (key, status)
                assert response["x-error-codes"] and "model" not in response


def test_error_responses_carry_the_rows_codes_and_headers() -> None:
    ops = operations(document())
    chat = ops[("POST", "/v1/chat/completions")]["responses"]
    assert set(chat["503"]["x-error-codes"]) == {"engine_unavailable", "overloaded", "shutting_down"}
    assert chat["503"]["headers"]["Retry-After"]["required"] is True
    assert chat["429"]["headers"]["Retry-After"]["required"] is True
    assert chat["401"]["headers"]["Www-Authenticate"]["required"] is True
    assert "text/event-stream" in chat["200"]["content"]  # `stream: true`
    assert set(chat["504"]["x-error-codes"]) == {"timeout"}
    assert "headers" not in chat["413"]
    doc = document()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "An API key (an admin key for /admin)."}
    assert "security" not in ops[("GET", "/health/ready")] and ops[("GET", "/v1/models")]["security"]


def test_metrics_lists_401_when_it_needs_a_key() -> None:
    assert error_statuses(operations(document(metrics_require_key=True))[("GET", "/metrics")]) == {401, 500}


def test_the_configured_caps_are_the_documents_maximum() -> None:
    schemas = document(max_tokens_limit=16, max_n=3)["components"]["schemas"]
    for model in ("ChatCompletionRequest", "CompletionRequest"):
        props = schemas[model]["properties"]
        assert props["max_tokens"]["anyOf"][0]["maximum"] == 16 and props["n"]["maximum"] == 3


def test_upload_states_its_body() -> None:
    upload = operations(document())[("PUT", "/admin/adapters/{name}")]
    assert upload["requestBody"]["content"] == {"application/gzip": {"schema": {"type": "string", "format": "binary"}}}
    assert [p["name"] for p in upload["parameters"]] == ["name"]


def _operation_of(doc: dict, method: str, path: str) -> dict | None:
    for template, ops in doc["paths"].items():
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path) and method.lower() in ops:
            return ops[method.lower()]
    return None


@pytest.mark.parametrize("kind", [kind for kind, _ in FAILURE_TABLE if kind not in NOT_PROVOKED],
                         ids=lambda kind: kind.__name__)
def test_what_the_table_produces_for_a_route_is_documented(harness: Harness, kind: type[BaseException]) -> None:  # noqa: F811
    """Each row provoked through the real app: an operation's answer is a status its document lists,
    with the row's code among the status's codes; a path or method no operation serves is no
    operation's answer (404, 405)."""
    row = dict(FAILURE_TABLE)[kind]
    response = PROVOKE[kind](harness)
    request = response.request
    doc = harness.http.app.openapi()
    op = _operation_of(doc, request.method, request.url.path)
    if op is None:
        assert row.status in (404, 405), f"{request.method} {request.url.path}"
        return
    documented = op["responses"].get(str(response.status_code))
    assert documented is not None, f"{request.method} {request.url.path}: {response.status_code} is undocumented"
    assert response.json()["error"]["code"] in documented["x-error-codes"]
    for name in documented.get("headers", {}):
        assert name.lower() in response.headers


def test_405_allows_every_method_of_the_path(harness: Harness) -> None:  # noqa: F811
    """Starlette names only the first matching route's methods; `Allow` lists the path's."""
    admin = {"authorization": "Bearer admin-key-0123456789abcdef"}
    response = harness.http.options("/admin/adapters/some-name", headers=admin)
    assert response.status_code == 405 and response.headers["allow"] == "DELETE, GET, PATCH, PUT"
    assert harness.http.options("/admin/adapters", headers=admin).headers["allow"] == "GET, POST"


def _request_models() -> list[type]:
    """Every model a request body of the document is made of (the app's own pydantic models)."""
    from pydantic import BaseModel

    def subclasses(kind: type) -> list[type]:
        return [kind, *(c for sub in kind.__subclasses__() for c in subclasses(sub))]

    by_name = {c.__name__: c for c in subclasses(BaseModel) if c.__module__.startswith("service.")}
    doc, seen = document(), set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.split("/")[-1] not in seen:
                seen.add(ref.split("/")[-1])
                walk(doc["components"]["schemas"][ref.split("/")[-1]])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for ops in doc["paths"].values():
        for op in ops.values():
            walk(op.get("requestBody", {}))
    return [by_name[name] for name in sorted(seen)]


def test_request_models_take_numbers_and_booleans_only_as_such(harness: Harness) -> None:  # noqa: F811
    """Pydantic's lax mode reads `true` as 1, "0.5" as 0.5, 0 as false: every request model's number
    and boolean fields refuse the other kinds."""
    from service.numbers import BOOLEAN, NUMBER, StrictScalars, scalar_fields

    models = _request_models()
    assert len(models) >= 15
    for model in models:
        for name in scalar_fields(model):
            metadata = model.model_fields[name].metadata
            assert issubclass(model, StrictScalars) or NUMBER in metadata or BOOLEAN in metadata, \
                f"{model.__name__}.{name}"
    response = harness.http.post("/v1/chat/completions", headers={"authorization": "Bearer api-key-0123456789abcdef"},
                                 json={"model": "x", "messages": [{"role": "user", "content": "hi"}], "temperature": True})
    assert response.status_code == 400 and response.json()["error"]["param"] == "temperature"
    for body, param in (({"temperature": "0.5"}, "temperature"), ({"stream": 0}, "stream"), ({"n": True}, "n")):
        response = harness.http.post("/v1/chat/completions", headers={"authorization": "Bearer api-key-0123456789abcdef"},
                                     json={"model": "x", "messages": [{"role": "user", "content": "hi"}], **body})
        assert response.status_code == 400 and response.json()["error"]["param"] == param, body
