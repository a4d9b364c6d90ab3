"""One generation service for chat, completions and tasks: sessions, limits, fallbacks, accounting."""

from service.generation.service import GenerationService
from service.generation.session import GenerationSession
from service.generation.types import (
    ChoiceResult,
    GenerationLimits,
    GenerationRequest,
    GenerationResult,
    GenerationSettings,
    PreparedGeneration,
    PromptMessage,
)

__all__ = [
    "ChoiceResult", "GenerationLimits", "GenerationRequest", "GenerationResult", "GenerationService",
    "GenerationSession", "GenerationSettings", "PreparedGeneration", "PromptMessage",
]
