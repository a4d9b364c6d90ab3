"""Response headers that name what served a request (model, adapter version, route, variant)."""

from __future__ import annotations

from service.generation import GenerationResult
from service.routing import ServingTarget


def served_headers(model: str, base_model: str, route: str, variant: str, adapter_version: int | None) -> dict[str, str]:
    headers = {
        "x-loragate-model": model,
        "x-loragate-base-model": base_model,
        "x-loragate-route": route,
        "x-loragate-variant": variant,
    }
    if adapter_version is not None:
        headers["x-loragate-adapter-version"] = str(adapter_version)
    return headers


def target_headers(target: ServingTarget) -> dict[str, str]:
    version = target.adapter.version if target.adapter is not None else None
    return served_headers(target.model, target.base_model, target.route, target.variant, version)


def token_headers(prompt_tokens: int, completion_tokens: int) -> dict[str, str]:
    """The `usage` figures of a finished reply (the access log reads them; streams cannot send them)."""
    return {"x-loragate-prompt-tokens": str(prompt_tokens), "x-loragate-completion-tokens": str(completion_tokens)}


def result_headers(result: GenerationResult) -> dict[str, str]:
    headers = target_headers(result.target) | token_headers(result.prompt_tokens, result.completion_tokens)
    headers["x-loragate-duration-ms"] = f"{result.duration_seconds * 1000:.1f}"
    if result.time_to_first_token_seconds is not None:
        headers["x-loragate-ttft-ms"] = f"{result.time_to_first_token_seconds * 1000:.1f}"
    if result.structured_output is not None:
        headers["x-loragate-structured-output"] = result.structured_output
        headers["x-loragate-structured-backend"] = result.structured_backend or ""
    return headers
