"""Adapters from an S3 bucket through the real service: a real S3-compatible server (moto's, started
by this test on 127.0.0.1), the real s3fs, the real engine. Registration by URI, load on first use
(one download for concurrent first requests), a missing name's 404 remembered, a pickle refused.
Credentials and the endpoint come only from the standard AWS environment variables."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from service.testing.adapters import make_peft_adapter
from service.testing.process import ServiceProcess
from tests.integration.conftest import service_env

moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")

BUCKET = "team-adapters"
MSG = [{"role": "user", "content": "Say hi."}]


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[tuple[str, object]]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    source = tmp_path_factory.mktemp("s3-adapters")
    for name, seed in (("support", 21), ("adapters/resolved-one", 22)):
        folder = make_peft_adapter(model_dir, source / name.replace("/", "-"), seed=seed)
        for file in folder.iterdir():
            if file.is_file():
                client.put_object(Bucket=BUCKET, Key=f"{name}/{file.name}", Body=file.read_bytes())
    client.put_object(Bucket=BUCKET, Key="adapters/pickled/adapter_model.bin", Body=b"\x80\x04K\x01.")
    client.put_object(Bucket=BUCKET, Key="adapters/pickled/adapter_config.json", Body=b"{}")
    try:
        yield endpoint, client
    finally:
        server.stop()


@pytest.fixture(scope="module")
def remote_service(s3: tuple[str, object], logs_dir: Path, tmp_path_factory: pytest.TempPathFactory,
                   adapter_source_dir: Path) -> Iterator[tuple[ServiceProcess, Path]]:
    endpoint, _ = s3
    store = tmp_path_factory.mktemp("remote-store")
    empty = tmp_path_factory.mktemp("no-aws-config")
    env = service_env(store, [adapter_source_dir]) | {
        "LORAGATE_AUTH_DISABLED": "true",
        "LORAGATE_ADAPTER_RESOLVER_URI": f"s3://{BUCKET}/adapters/",
        "LORAGATE_ADAPTER_RESOLVER_NEGATIVE_TTL_S": "600",
        "LORAGATE_ADAPTER_URI_ALLOW": json.dumps(["team-*"]),
        "LORAGATE_ADAPTER_DOWNLOAD_TIMEOUT_S": "60",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_CONFIG_FILE": str(empty / "config"), "AWS_SHARED_CREDENTIALS_FILE": str(empty / "credentials"),
    }
    proc = ServiceProcess(logs_dir / "remote.log", env=env).start()
    try:
        proc.wait_ready()
        yield proc, store
    finally:
        proc.stop()


def audit(store: Path) -> list[dict]:
    return [json.loads(line) for line in (store / "audit.log").read_text().splitlines() if line.strip()]


def chat(http: httpx.Client, model: str) -> httpx.Response:
    return http.post("/v1/chat/completions", json={"model": model, "messages": MSG, "max_tokens": 4, "temperature": 0})


def test_register_from_s3_and_serve(remote_service: tuple[ServiceProcess, Path]) -> None:
    proc, _ = remote_service
    with httpx.Client(base_url=proc.base_url, timeout=180) as http:
        reply = http.post("/admin/adapters", json={"name": "support", "uri": f"s3://{BUCKET}/support/"})
        assert reply.status_code == 201, reply.text
        record = reply.json()
        assert record["origin"]["uri"] == f"s3://{BUCKET}/support/"
        assert record["origin"]["files_sha256"]["adapter_model.safetensors"] == record["sha256"]
        assert "ETag" in record["origin"]["versions"]["adapter_model.safetensors"]
        assert chat(http, "support").status_code == 200
        # A bucket outside --adapter-uri-allow, and a scheme that is not allowed: 400 naming `uri`.
        for uri in ("s3://other-bucket/x/", "ftp://team-adapters/x/"):
            refused = http.post("/admin/adapters", json={"name": "nope", "uri": uri})
            assert refused.status_code == 400 and refused.json()["error"]["param"] == "uri", refused.text
        missing = http.post("/admin/adapters", json={"name": "nope", "uri": f"s3://{BUCKET}/nothing-here/"})
        assert missing.status_code == 404, missing.text


def test_unknown_names_resolve_on_first_use_once(remote_service: tuple[ServiceProcess, Path]) -> None:
    proc, store = remote_service
    with httpx.Client(base_url=proc.base_url, timeout=300) as http, ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(lambda _: chat(http, "resolved-one"), range(6)))
        assert [r.status_code for r in replies] == [200] * 6, [r.text[:200] for r in replies]
        resolved = [e for e in audit(store) if e.get("action") == "resolved" and e.get("adapter") == "resolved-one"]
        assert len(resolved) == 1 and resolved[0]["version"] == 1  # concurrent first requests: one load
        assert "resolved-one" in {m["id"] for m in http.get("/v1/models").json()["data"]}


def test_missing_and_refused_names_are_remembered(remote_service: tuple[ServiceProcess, Path],
                                                  s3: tuple[str, object]) -> None:
    proc, store = remote_service
    _, client = s3
    with httpx.Client(base_url=proc.base_url, timeout=180) as http:
        first = chat(http, "not-in-bucket")
        assert first.status_code == 404 and first.json()["error"]["code"] == "model_not_found", first.text
        # Now it exists, but the negative cache (600 s) answers without asking the store.
        client.put_object(Bucket=BUCKET, Key="adapters/not-in-bucket/adapter_config.json", Body=b"{}")
        assert chat(http, "not-in-bucket").status_code == 404
        pickled = chat(http, "pickled")
        assert pickled.status_code == 424, pickled.text
        assert "pickle" in pickled.json()["error"]["code"]
        assert not [e for e in audit(store) if e.get("adapter") in ("pickled", "not-in-bucket")]
        assert not list(store.glob(".staging/*")), "a refused download left files behind"
