"""The admin API's one router: everything under /admin needs an admin key, by construction."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from service.api.admin import adapters, routes
from service.api.auth import require_admin

router = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)])
router.include_router(adapters.router)
router.include_router(routes.router)
# Adapter uploads (PUT {UPLOAD_PREFIX}{name}) are streamed and capped by their route, not buffered.
UPLOAD_PREFIX = f"{router.prefix}{adapters.router.prefix}/"
