"""Ticket triage for ticketing systems: POST /v1/tickets/triage (and /batch)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from service.api.protocol import ErrorResponse
from service.api.state import Services, get_services
from service.errors import InvalidRequestError
from service.triage import BatchTriageRequest, BatchTriageResponse, TriageRequest, TriageResponse

router = APIRouter(prefix="/v1/tickets", tags=["triage"])
ServicesDep = Annotated[Services, Depends(get_services)]
ERRORS = {code: {"model": ErrorResponse} for code in (400, 404, 502, 503)}


@router.post("/triage", response_model=TriageResponse, responses=ERRORS)
async def triage_ticket(body: TriageRequest, services: ServicesDep) -> TriageResponse:
    return await services.triage.triage(body, body.model, body.max_tokens)


@router.post("/triage/batch", response_model=BatchTriageResponse, responses=ERRORS)
async def triage_batch(body: BatchTriageRequest, services: ServicesDep) -> BatchTriageResponse:
    limit = services.settings.triage_batch_max
    if len(body.tickets) > limit:
        raise InvalidRequestError(f"At most {limit} tickets per batch; got {len(body.tickets)}.", param="tickets")
    return await services.triage.triage_batch(body)


@router.get("/triage/schema")
async def triage_schema(services: ServicesDep) -> dict:
    """The JSON schema of `triage` (the TicketTriage model)."""
    return services.triage.schema
