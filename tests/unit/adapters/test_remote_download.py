"""Adapter URIs and downloads through fsspec, with in-memory stand-ins for every store's
filesystem (gs://, hf://, az://, s3://, https://) and the real local one (file://, http://)."""

from __future__ import annotations

import asyncio
import functools
import http.server
import io
import shutil
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.adapters.remote import fetch_adapter, parse_adapter_uri
from service.adapters.remote.download import MAX_OBJECTS
from service.adapters.validation import AdapterValidationError, inspect_adapter
from tests.support.fake_stores import install, put_folder
from tests.support.registry_harness import file_sha256

SCHEMES = ["s3", "gs", "az", "hf", "https", "file"]
MAX = 50 << 20


def parse(uri: str, allow: list[str] | None = None, roots: list[Path] | None = None,
          schemes: list[str] | None = None):
    return parse_adapter_uri(uri, schemes or SCHEMES, allow or [], roots or [])


def fetch(uri: str, dest: Path, max_bytes: int = MAX, timeout_s: float = 30.0, **parse_options):
    return asyncio.run(fetch_adapter(parse(uri, **parse_options), dest, max_bytes, timeout_s))


def refused(call, *args, **kwargs) -> AdapterValidationError:
    with pytest.raises(AdapterValidationError) as caught:
        call(*args, **kwargs)
    return caught.value


# ------------------------------------------------------------------ URIs
@pytest.mark.parametrize(("uri", "host", "path", "revision", "archive"), [
    ("s3://bucket/team/one/", "bucket", "bucket/team/one", None, False),
    ("gs://bucket/one", "bucket", "bucket/one", None, False),
    ("az://container/one/", "container", "container/one", None, False),
    ("hf://org/repo", "org/repo", "org/repo", None, False),
    ("hf://org/repo@v2/adapters/one", "org/repo", "org/repo@v2/adapters/one", "v2", False),
    ("https://example.com/a/one.tar.gz", "example.com", "https://example.com/a/one.tar.gz", None, True),
    ("s3://bucket/one.tgz", "bucket", "bucket/one.tgz", None, True),
])
def test_uris_map_to_fsspec_paths(uri, host, path, revision, archive) -> None:
    parsed = parse(uri)
    assert (parsed.host, parsed.path, parsed.revision, parsed.is_archive) == (host, path, revision, archive)


@pytest.mark.parametrize(("uri", "code"), [
    ("ftp://host/x/", "adapter_uri_not_allowed"),
    ("http://example.com/one.tar.gz", "adapter_uri_not_allowed"),  # not in the default schemes
    ("one", "adapter_uri_not_allowed"),
    ("s3://key:secret@bucket/one/", "invalid_adapter_uri"),  # credentials never come from the request
    ("s3://bucket/../other/", "invalid_adapter_uri"),
    ("s3://bucket/one/?versionId=3", "invalid_adapter_uri"),
    ("s3:///one/", "invalid_adapter_uri"),
    ("https://example.com/folder/", "invalid_adapter_uri"),  # https names an archive
    ("hf://org/repo@/x", "invalid_adapter_uri"),
    ("s3://bucket/one\n", "invalid_adapter_uri"),
])
def test_bad_uris_are_400_on_param_uri(uri: str, code: str) -> None:
    error = refused(parse, uri)
    assert (error.code, error.status, error.param) == (code, 400, "uri")


def test_schemes_can_be_narrowed() -> None:
    assert refused(parse, "gs://bucket/one/", schemes=["s3"]).code == "adapter_uri_not_allowed"
    assert parse("S3://bucket/one/", schemes=["s3"]).scheme == "s3"


def test_allow_list_matches_buckets_hosts_and_repos() -> None:
    allow = ["team-*", "*.example.com", "org/*"]
    for uri in ("s3://team-a/one/", "https://cdn.example.com/one.tar.gz", "hf://org/one", "gs://TEAM-b/x/"):
        parse(uri, allow=allow)
    for uri in ("s3://other/one/", "https://example.org/one.tar.gz", "hf://evil/one", "az://team/x/"):
        error = refused(parse, uri, allow=allow)
        assert (error.code, error.status, error.param) == ("adapter_uri_not_allowed", 400, "uri")


def test_file_uris_stay_inside_the_allowed_roots(adapter_root: Path, tmp_path: Path) -> None:
    assert parse(f"file://{adapter_root}/one", roots=[adapter_root]).path == str(adapter_root / "one")
    outside = refused(parse, f"file://{tmp_path}/", roots=[adapter_root])
    assert (outside.code, outside.param) == ("adapter_path_outside_roots", "uri")
    assert refused(parse, f"file://otherhost{adapter_root}/one", roots=[adapter_root]).code == "invalid_adapter_uri"


# ------------------------------------------------------------- downloads
@pytest.mark.parametrize(("scheme", "uri", "prefix"), [
    ("gs", "gs://bucket/adapters/one/", "bucket/adapters/one"),
    ("hf", "hf://org/one@v3", "org/one@v3"),
    ("az", "az://container/one", "container/one"),
    ("s3", "s3://bucket/one/", "bucket/one"),
])
def test_every_store_downloads_through_one_path(monkeypatch, tmp_path, adapter_root, tiny_model_dir, scheme, uri,
                                                 prefix) -> None:
    from service.adapters.validation import BaseModelShape

    store = install(monkeypatch, scheme)
    put_folder(store, prefix, adapter_root / "one")
    folder, origin = fetch(uri, tmp_path / "dl")
    source = adapter_root / "one"
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        assert file_sha256(folder / name) == file_sha256(source / name)
        assert origin.files_sha256[name] == file_sha256(source / name)
        assert origin.versions[name] == {"generation": "7"}
    assert origin.uri == uri and len(origin.sha256) == 64
    assert origin.size_bytes == sum(p.stat().st_size for p in source.iterdir() if p.is_file())
    assert origin.revision == ("v3" if scheme == "hf" else None)
    # What landed passes exactly the checks a local folder does.
    inspect_adapter(folder, BaseModelShape.from_model_dir(tiny_model_dir), 64, MAX)


def test_a_file_uri_downloads_through_the_same_path(tmp_path, adapter_root) -> None:
    folder, origin = fetch(f"file://{adapter_root}/one/", tmp_path / "dl", roots=[adapter_root])
    assert origin.files_sha256["adapter_model.safetensors"] == file_sha256(
        adapter_root / "one" / "adapter_model.safetensors")


def _tar_gz(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname="one")
    return buffer.getvalue()


def test_an_archive_uri_is_downloaded_then_unpacked_by_the_upload_checks(monkeypatch, tmp_path, adapter_root):
    store = install(monkeypatch, "https")
    archive = _tar_gz(adapter_root / "one")
    store().pipe_file("https://example.com/releases/one.tar.gz", archive)  # the http filesystems take whole URLs
    folder, origin = fetch("https://example.com/releases/one.tar.gz", tmp_path / "dl")
    assert (folder / "adapter_model.safetensors").is_file()
    assert origin.versions == {"one.tar.gz": {"ETag": "etag-1"}}
    assert origin.size_bytes == len(archive)


@pytest.fixture()
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


def test_a_real_http_archive_downloads_with_fsspecs_http_filesystem(http_root, tmp_path, adapter_root) -> None:
    root, base = http_root
    (root / "one.tar.gz").write_bytes(_tar_gz(adapter_root / "one"))
    folder, _ = fetch(f"{base}/one.tar.gz", tmp_path / "dl", schemes=["http"])
    assert (folder / "adapter_config.json").is_file()
    missing = refused(fetch, f"{base}/none.tar.gz", tmp_path / "dl2", schemes=["http"])
    assert (missing.status, missing.code) == (404, "adapter_source_not_found")


def test_pickles_are_refused_before_anything_is_downloaded(monkeypatch, tmp_path, adapter_root) -> None:
    store = install(monkeypatch, "gs")
    put_folder(store, "bucket/one", adapter_root / "one", extra={"training_args.bin": b"\x80\x04pickle"})
    store.opened.clear()
    error = refused(fetch, "gs://bucket/one/", tmp_path / "dl")
    assert (error.code, error.status, error.param) == ("pickle_weights_refused", 400, "uri")
    assert store.opened == [] and not (tmp_path / "dl").exists()


def test_the_size_cap_is_counted_while_downloading(monkeypatch, tmp_path, adapter_root) -> None:
    store = install(monkeypatch, "gs")
    put_folder(store, "bucket/big", adapter_root / "one", extra={"padding.safetensors": bytes(8 << 20)})
    store.lie_about_sizes = True  # the listing's sizes cannot be trusted: the bytes themselves are counted
    store.bytes_read[0] = 0
    cap = 2 << 20
    error = refused(fetch, "gs://bucket/big/", tmp_path / "dl", max_bytes=cap)
    assert (error.code, error.status) == ("adapter_too_large", 400)
    assert store.bytes_read[0] <= cap + (1 << 20)  # stopped within one chunk of the cap, not after 8 MiB


def test_an_oversized_listing_is_refused_before_downloading(monkeypatch, tmp_path, adapter_root) -> None:
    store = install(monkeypatch, "gs")
    put_folder(store, "bucket/big", adapter_root / "one", extra={"padding.safetensors": bytes(3 << 20)})
    store.opened.clear()
    assert refused(fetch, "gs://bucket/big/", tmp_path / "dl", max_bytes=2 << 20).code == "adapter_too_large"
    assert store.opened == []


def test_too_many_objects_are_refused(monkeypatch, tmp_path) -> None:
    store = install(monkeypatch, "gs")
    for i in range(MAX_OBJECTS + 1):
        store().pipe_file(f"bucket/many/f{i}.json", b"{}")
    assert refused(fetch, "gs://bucket/many/", tmp_path / "dl").code == "adapter_too_large"


def test_a_missing_prefix_is_404(monkeypatch, tmp_path) -> None:
    install(monkeypatch, "hf")
    error = refused(fetch, "hf://org/none", tmp_path / "dl")
    assert (error.status, error.code, error.param) == (404, "adapter_source_not_found", "uri")


def test_a_uri_naming_one_object_is_refused(monkeypatch, tmp_path) -> None:
    store = install(monkeypatch, "gs")
    store().pipe_file("bucket/one/adapter_config.json", b"{}")
    assert refused(fetch, "gs://bucket/one/adapter_config.json", tmp_path / "dl").code == "invalid_adapter_uri"


@pytest.mark.parametrize(("failure", "code"), [
    (ConnectionError("connect timeout on endpoint"), "adapter_store_unreachable"),
    (OSError("name resolution failed"), "adapter_store_unreachable"),
    (PermissionError("AccessDenied"), "adapter_store_denied"),
])
def test_store_failures_are_424_with_the_stores_reason(monkeypatch, tmp_path, failure, code) -> None:
    store = install(monkeypatch, "s3")
    store.fail_with = failure
    error = refused(fetch, "s3://bucket/one/", tmp_path / "dl")
    assert (error.status, error.code, error.param) == (424, code, "uri")
    assert str(failure) in error.message


def test_a_slow_download_is_answered_at_the_timeout_and_cleaned_up(monkeypatch, tmp_path, adapter_root) -> None:
    store = install(monkeypatch, "gs")
    put_folder(store, "bucket/one", adapter_root / "one")
    store.read_delay_s = 0.5
    dest = tmp_path / "dl"

    async def run() -> AdapterValidationError:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(AdapterValidationError) as caught:
            await fetch_adapter(parse("gs://bucket/one/"), dest, MAX, 0.2)
        assert loop.time() - started < 0.45  # answered at the timeout, not when the thread noticed
        for _ in range(100):  # the abandoned copy stops at its next chunk and removes its files
            if not dest.exists():
                break
            await asyncio.sleep(0.05)
        return caught.value

    error = asyncio.run(run())
    assert (error.status, error.code) == (424, "adapter_store_timeout")
    assert not dest.exists()


def test_a_missing_backend_says_which_extra_to_install(monkeypatch, tmp_path) -> None:
    import fsspec

    def unavailable(*args, **kwargs):
        raise ImportError("Install gcsfs to access Google Storage")

    monkeypatch.setattr(fsspec, "filesystem", unavailable)
    error = refused(fetch, "gs://bucket/one/", tmp_path / "dl")
    assert (error.status, error.code) == (400, "adapter_uri_scheme_unavailable")
    assert "gcs" in error.message
    shutil.rmtree(tmp_path / "dl", ignore_errors=True)
