"""Register from s3:// through the real s3fs against moto's S3 server on loopback (no engine, no
network beyond 127.0.0.1): the default install's store, with credentials and endpoint from the
standard AWS environment variables only."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.errors import DependencyFailedError, NotFoundError
from tests.support.registry_harness import MAX_BYTES, file_sha256, make_registry

moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture()
def aws_env(monkeypatch: pytest.MonkeyPatch, s3_endpoint: str, tmp_path: Path) -> str:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))  # nothing from the machine
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    return s3_endpoint


def test_register_from_s3_through_s3fs(aws_env: str, tmp_path: Path, tiny_model_dir: Path, adapter_root: Path) -> None:
    client = boto3.client("s3", endpoint_url=aws_env)
    client.create_bucket(Bucket="team-adapters")
    client.put_bucket_versioning(Bucket="team-adapters", VersioningConfiguration={"Status": "Enabled"})
    for file in (adapter_root / "one").iterdir():
        if file.is_file():
            client.put_object(Bucket="team-adapters", Key=f"support/{file.name}", Body=file.read_bytes())
    client.put_object(Bucket="team-adapters", Key="pickled/adapter_model.bin", Body=b"\x80\x04")
    registry, engine = make_registry(tmp_path / "store", tiny_model_dir, [adapter_root], uri_allow=["team-*"],
                                     download_timeout_s=20.0)

    async def run() -> None:
        record = await registry.register_uri("support", "s3://team-adapters/support/")
        weights = file_sha256(adapter_root / "one" / "adapter_model.safetensors")
        assert record.sha256 == weights and record.origin is not None
        assert record.origin.files_sha256["adapter_model.safetensors"] == weights
        assert "ETag" in record.origin.versions["adapter_model.safetensors"]
        assert engine.loads() == [record.engine_id]
        with pytest.raises(NotFoundError):
            await registry.register_uri("missing", "s3://team-adapters/none/")
        with pytest.raises(Exception) as caught:
            await registry.register_uri("pickled", "s3://team-adapters/pickled/")
        assert getattr(caught.value, "code", None) == "pickle_weights_refused"

    try:
        asyncio.run(run())
    finally:
        registry.replicas.close()


def test_an_unreachable_endpoint_is_a_424_within_the_timeout(monkeypatch: pytest.MonkeyPatch, aws_env: str,
                                                             tmp_path: Path, tiny_model_dir: Path,
                                                             adapter_root: Path) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # the discard port: nothing listens
    registry, _ = make_registry(tmp_path / "store", tiny_model_dir, [adapter_root], download_timeout_s=2.0)

    async def run() -> DependencyFailedError:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(DependencyFailedError) as caught:
            await registry.register_uri("support", "s3://team-adapters/support/")
        assert loop.time() - started < 3.0  # answered by the timeout at the latest (s3fs retries a refused connection)
        return caught.value

    try:
        error = asyncio.run(run())
    finally:
        registry.replicas.close()
    assert error.status == 424 and error.code in ("adapter_store_unreachable", "adapter_store_timeout"), error.message


def test_an_oversized_object_is_refused_while_downloading(aws_env: str, tmp_path: Path, tiny_model_dir: Path,
                                                          adapter_root: Path) -> None:
    """The cap holds against the real store, and nothing of the refused download stays in staging."""
    client = boto3.client("s3", endpoint_url=aws_env)
    client.create_bucket(Bucket="team-big")
    for file in (adapter_root / "one").iterdir():
        if file.is_file():
            client.put_object(Bucket="team-big", Key=f"big/{file.name}", Body=file.read_bytes())
    client.put_object(Bucket="team-big", Key="big/padding.safetensors", Body=bytes(MAX_BYTES + (1 << 20)))
    store = tmp_path / "store"
    registry, engine = make_registry(store, tiny_model_dir, [adapter_root], download_timeout_s=20.0)

    async def run() -> None:
        with pytest.raises(Exception) as caught:
            await registry.register_uri("big", "s3://team-big/big/")
        assert (getattr(caught.value, "status", None), getattr(caught.value, "code", None)) == (
            400, "adapter_too_large")

    try:
        asyncio.run(run())
    finally:
        registry.replicas.close()
    assert engine.loads() == [] and registry.handle("big") is None
    assert (store / ".staging").is_dir() and list((store / ".staging").iterdir()) == []
