"""The engine: the only package that imports vLLM (lazily, inside `Engine` and `plugins/`)."""

from service.engine.engine import Engine
from service.engine.types import (
    STRUCTURED_OUTPUT_BACKENDS,
    AdapterHandle,
    EngineOptions,
    EngineRequestError,
    EngineSettings,
    EngineState,
    EngineUnavailableError,
    FinishReason,
    GenerationDelta,
    GenerationFailedError,
    GenerationUpdate,
    SamplingOptions,
    SchedulerStep,
    StructuredConstraint,
    StructuredOutputBackend,
    TokenLogprob,
    TopToken,
)

__all__ = [
    "STRUCTURED_OUTPUT_BACKENDS", "AdapterHandle", "Engine", "EngineOptions", "EngineRequestError",
    "EngineSettings", "EngineState", "EngineUnavailableError", "FinishReason", "GenerationDelta",
    "GenerationFailedError", "GenerationUpdate", "SamplingOptions", "SchedulerStep", "StructuredConstraint",
    "StructuredOutputBackend", "TokenLogprob", "TopToken",
]
