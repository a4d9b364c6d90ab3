"""The HTTP layer: thin FastAPI routes over the engine, registry, router, generation and tasks."""

from service.api.app import create_app

__all__ = ["create_app"]
