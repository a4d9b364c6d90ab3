"""The admin API: the adapter registry (/admin/adapters) and A/B routes (/admin/routes)."""

from service.api.admin.router import UPLOAD_PREFIX, router

__all__ = ["UPLOAD_PREFIX", "router"]
