"""The admin API: the adapter registry (/admin/adapters) and A/B routes (/admin/routes)."""

from service.api.admin.adapters import router as adapters_router
from service.api.admin.routes import router as routes_router

__all__ = ["adapters_router", "routes_router"]
