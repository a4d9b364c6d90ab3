"""GET /metrics: Prometheus text format, or OpenMetrics when the scraper asks for it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client.exposition import choose_encoder

from service.api.state import Services, get_services

router = APIRouter(tags=["observability"])


@router.get("/metrics", response_class=Response)
async def metrics(request: Request, services: Annotated[Services, Depends(get_services)]) -> Response:
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encoder(services.metrics.registry), media_type=content_type)
