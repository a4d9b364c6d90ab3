"""Adapter administration: register (by path, URI or upload), pin, list, inspect, remove."""

from __future__ import annotations

import tempfile
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel, Field

from service.adapters import AdapterRecord, AdapterStatus
from service.api.auth import CallerDep
from service.api.deps import ServicesDep
from service.api.errors import failures
from service.errors import (
    ConflictError,
    DependencyFailedError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from service.numbers import BOOLEAN

router = APIRouter(prefix="/adapters", tags=["admin"])  # under the admin router (admin key)
GZIP_TYPES = {"application/gzip", "application/x-gzip", "application/x-tar+gzip", "application/octet-stream"}


class RegisterAdapterRequest(BaseModel):
    """Exactly one of `path` and `uri`."""

    name: str = Field(description="Adapter name clients send as `model`.")
    path: str | None = Field(None, description="Adapter folder inside one of the allowed roots.")
    uri: str | None = Field(
        None, description="Where to download the adapter from: s3://bucket/prefix/, gs://, az://, "
        "hf://org/repo[@revision], https://.../adapter.tar.gz or file:///folder (schemes and hosts as the server "
        "allows; credentials from the server's environment).",
    )
    pinned: Annotated[bool | None, BOOLEAN] = Field(
        None, description="Never evict this adapter from the engine's cache; unset: as the previous version.",
    )

    def source_error(self) -> InvalidRequestError | None:
        """Exactly one source: the error names the field to add (`path`) or the one too many (`uri`)."""
        if (self.path is None) == (self.uri is None):
            return InvalidRequestError("Give exactly one of `path` (a folder) and `uri` (a remote source).",
                                       param="path" if self.path is None else "uri")
        return None


class UpdateAdapterRequest(BaseModel):
    pinned: Annotated[bool, BOOLEAN] = Field(
        description="Never evict this adapter from the engine's cache (true) or let LRU decide.")


class AdapterList(BaseModel):
    object: str = "list"
    data: list[AdapterStatus]


@router.post("", status_code=201, response_model=AdapterRecord, responses=failures(
    InvalidRequestError, NotFoundError, ConflictError, PayloadTooLargeError, DependencyFailedError))
async def register_adapter(body: RegisterAdapterRequest, services: ServicesDep, caller: CallerDep) -> AdapterRecord:
    if (error := body.source_error()) is not None:
        raise error
    if body.uri is not None:
        return await services.registry.register_uri(body.name, body.uri, caller=caller, pinned=body.pinned)
    assert body.path is not None  # one of the two, by the model's validator
    return await services.registry.register_path(body.name, body.path, caller=caller, pinned=body.pinned)


@router.patch("/{name}", response_model=AdapterRecord, responses=failures(NotFoundError, ConflictError))
async def update_adapter(name: str, body: UpdateAdapterRequest, services: ServicesDep,
                         caller: CallerDep) -> AdapterRecord:
    return await services.registry.set_pinned(name, body.pinned, caller=caller)


# The body is streamed, not parsed: the document states it by hand (the content type is checked here).
UPLOAD_BODY = {"requestBody": {"required": True, "description": "The adapter folder as a .tar.gz archive.",
                               "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}}}}


@router.put("/{name}", status_code=201, response_model=AdapterRecord, openapi_extra=UPLOAD_BODY, responses=failures(
    InvalidRequestError, ConflictError, PayloadTooLargeError, UnsupportedMediaTypeError))
async def upload_adapter(
    name: str, request: Request, services: ServicesDep, caller: CallerDep,
    content_type: Annotated[str, Header(include_in_schema=False)] = "",
) -> AdapterRecord:
    if content_type.split(";")[0].strip().lower() not in GZIP_TYPES:
        raise UnsupportedMediaTypeError(
            "Upload the adapter folder as a .tar.gz body with content-type: application/gzip.",
            param="content-type",
        )
    limit = services.settings.adapters.max_adapter_bytes
    with tempfile.SpooledTemporaryFile(max_size=8 * 2**20) as archive:
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise PayloadTooLargeError(f"The upload is larger than the {limit}-byte limit.")
            archive.write(chunk)
        archive.seek(0)
        return await services.registry.register_archive(name, archive, caller=caller)


@router.get("", response_model=AdapterList)
async def list_adapters(services: ServicesDep) -> AdapterList:
    return AdapterList(data=await services.registry.statuses())


@router.get("/{name}", response_model=AdapterStatus, responses=failures(NotFoundError))
async def get_adapter(name: str, services: ServicesDep) -> AdapterStatus:
    return await services.registry.status(name)


@router.delete("/{name}", status_code=204, responses=failures(NotFoundError, ConflictError))
async def remove_adapter(name: str, services: ServicesDep, caller: CallerDep) -> Response:
    await services.registry.remove(name, caller=caller)
    return Response(status_code=204)
