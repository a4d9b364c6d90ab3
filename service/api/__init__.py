"""The HTTP layer: thin FastAPI routes over the engine, registry, router and metrics."""
