"""The OpenAI-compatible API: protocol (request/response shapes), translation, streaming, routes."""

from service.api.openai.routes import router

__all__ = ["router"]
