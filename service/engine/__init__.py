"""The engine: the only package that imports vLLM (lazily, inside `Engine` and `plugins/`)."""

from service.engine.engine import Engine
from service.engine.types import (
    STRUCTURED_OUTPUT_BACKENDS,
    AdapterHandle,
    EngineOptions,
    EngineRequestError,
    EngineState,
    EngineUnavailableError,
    FinishReason,
    GenerationDelta,
    GenerationFailedError,
    GenerationUpdate,
    SamplingOptions,
    StructuredConstraint,
    TokenLogprob,
    TopToken,
)

__all__ = [
    "STRUCTURED_OUTPUT_BACKENDS", "AdapterHandle", "Engine", "EngineOptions", "EngineRequestError", "EngineState",
    "EngineUnavailableError", "FinishReason", "GenerationDelta", "GenerationFailedError", "GenerationUpdate",
    "SamplingOptions", "StructuredConstraint", "TokenLogprob", "TopToken",
]
