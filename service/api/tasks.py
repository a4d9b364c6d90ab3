"""Task endpoints for ticketing systems: POST /v1/tickets/triage (and /batch), the schema."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from service.api.admission import AdmittedRoute, admitted, batch_work, ticket_work
from service.api.auth import require_api_key
from service.api.cancellation import cancel_on_disconnect
from service.api.deps import RouteKeyHeader, ServicesDep
from service.api.errors import GENERATION_FAILURES, ErrorDetail, failures
from service.api.headers import served_headers, token_headers
from service.api.openai.protocol import CacheSalt
from service.errors import InvalidRequestError
from service.numbers import BOOLEAN, NUMBER
from service.tasks.triage import Ticket, TicketTriage, TriageMeta, TriageResponse, TriageThresholds

router = APIRouter(prefix="/v1/tickets", tags=["triage"], route_class=AdmittedRoute,
                   dependencies=[Depends(require_api_key)])
RESPONSES = failures(*GENERATION_FAILURES)


class TriageOptions(BaseModel):
    """How the labels are decided (shared by single and batch requests)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt option is a 400, not silently dropped

    probabilities: Annotated[bool, BOOLEAN] = Field(True, description="Read label probabilities and apply the decision policy "
                                "(confidence, urgent escalation, review flag); false: the decoded labels as they are.")
    policy: TriageThresholds | None = Field(None, description="Thresholds for this request, over the served "
                                            "adapter's and the server's.")
    cache_salt: CacheSalt = None


class TriageRequest(Ticket, TriageOptions):
    model: str | None = Field(None, description="Base model, adapter or route; default: the base model.")
    max_tokens: Annotated[int | None, NUMBER] = Field(None, ge=32, description="Token budget for the first attempt.")


class BatchTriageRequest(TriageOptions):
    tickets: list[Ticket] = Field(min_length=1)
    model: str | None = None


AdmittedTicket = Annotated[TriageRequest, admitted(TriageRequest, ticket_work)]
AdmittedBatch = Annotated[BatchTriageRequest, admitted(BatchTriageRequest, batch_work)]


class BatchItem(BaseModel):
    index: int
    triage: TicketTriage | None = None
    meta: TriageMeta | None = None
    error: ErrorDetail | None = None


class BatchTriageResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchItem]


@router.post("/triage", response_model=TriageResponse, responses=RESPONSES)
async def triage_ticket(body: AdmittedTicket, request: Request, services: ServicesDep,
                        route_key: RouteKeyHeader = None):
    # A client that leaves cancels the work, which aborts its engine request.
    work = services.triage.triage(body, body.model, body.max_tokens, route_key=route_key, policy=body.policy,
                                  probabilities=body.probabilities, cache_salt=body.cache_salt)
    result = await cancel_on_disconnect(request, work, services.settings.request_timeout_s)
    meta = result.meta
    headers = served_headers(meta.model, meta.base_model, meta.route, meta.variant, meta.adapter_version)
    headers |= token_headers(meta.prompt_tokens, meta.completion_tokens)
    return JSONResponse(result.model_dump(mode="json"), headers=headers)


@router.post("/triage/batch", response_model=BatchTriageResponse, responses=RESPONSES)
async def triage_batch(body: AdmittedBatch, request: Request, services: ServicesDep,
                       route_key: RouteKeyHeader = None) -> BatchTriageResponse:
    limit = services.settings.triage.batch_max
    if len(body.tickets) > limit:
        raise InvalidRequestError(f"At most {limit} tickets per batch; got {len(body.tickets)}.", param="tickets")
    results = await cancel_on_disconnect(
        request, services.triage.triage_batch(body.tickets, body.model, route_key=route_key, policy=body.policy,
                                              probabilities=body.probabilities, cache_salt=body.cache_salt),
        services.settings.request_timeout_s)
    return BatchTriageResponse(data=[
        BatchItem(index=i, triage=r.triage, meta=r.meta) if isinstance(r, TriageResponse)
        else BatchItem(index=i, error=ErrorDetail.of(r))
        for i, r in enumerate(results)
    ])


@router.get("/triage/schema")
async def triage_schema(services: ServicesDep) -> dict:
    """The JSON schema of `triage` (the TicketTriage model)."""
    return services.triage.schema
