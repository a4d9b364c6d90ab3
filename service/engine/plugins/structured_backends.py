"""Per-request structured-output backends inside one vLLM engine."""

from __future__ import annotations

from typing import Any

from service.engine.types import WHITESPACE_FREE_BACKENDS


def patch_structured_backends() -> None:
    """vLLM 0.32 gives one engine one structured-output backend, fixed by the first structured
    request. loragate needs to retry a schema on another backend when the first fails to compile
    it or its output fails validation, so this lets each request name its backend: the frontend
    validates the request for that backend, and the engine core keeps one backend instance per
    name. Backends share vLLM's packed int32 token bitmask format.
    """
    import dataclasses
    from concurrent.futures import Future

    from vllm.sampling_params import SamplingParams
    from vllm.v1.structured_output import StructuredOutputManager

    if getattr(StructuredOutputManager, "_loragate_multi_backend", False):
        return

    original_validate = SamplingParams._validate_structured_outputs

    def validate(self: Any, model_config: Any, so_config: Any, tokenizer: Any) -> None:
        params = self.structured_outputs
        wanted = getattr(params, "_backend", None) if params is not None else None
        if so_config is not None and wanted and wanted != so_config.backend and not params._backend_was_auto:
            params._backend = None
            so_config = dataclasses.replace(
                so_config, backend=wanted,
                disable_any_whitespace=so_config.disable_any_whitespace and wanted in WHITESPACE_FREE_BACKENDS,
            )
        original_validate(self, model_config, so_config, tokenizer)

    def backend_for(manager: Any, params: Any) -> Any:
        # One backend instance per (name, whitespace mode): vLLM's backends read the engine-wide
        # disable_any_whitespace, loragate honours the request's.
        name, compact = params._backend, bool(params.disable_any_whitespace)
        backends = manager.__dict__.setdefault("_loragate_backends", {})
        key = (name, compact)
        if key not in backends:
            vocab_size = manager.vllm_config.model_config.get_vocab_size()
            backend = _make_structured_backend(name, manager.vllm_config, manager.tokenizer, vocab_size)
            backend.disable_any_whitespace = compact and name in WHITESPACE_FREE_BACKENDS
            backends[key] = backend
            if manager.backend is None:
                manager.backend = backend  # allocates the shared bitmask
        return backends[key]

    def grammar_init(self: Any, request: Any) -> None:
        if request.structured_output_request is None:
            return
        backend_for(self, request.sampling_params.structured_outputs)
        if self._use_async_grammar_compilation:
            grammar: Any = self.executor.submit(self._create_grammar, request)
        else:
            try:
                grammar = self._create_grammar(request)
            except Exception as exc:
                grammar = Future()
                grammar.set_exception(exc)
        request.structured_output_request.grammar = grammar

    def create_grammar(self: Any, request: Any) -> Any:
        backend = backend_for(self, request.sampling_params.structured_outputs)
        request_type, grammar_spec = request.structured_output_request.structured_output_key
        stop_token_ids = request.sampling_params.all_stop_token_ids
        return backend.compile_grammar(request_type, grammar_spec, stop_token_ids=stop_token_ids)

    SamplingParams._validate_structured_outputs = validate
    StructuredOutputManager.grammar_init = grammar_init
    StructuredOutputManager._create_grammar = create_grammar
    StructuredOutputManager._loragate_multi_backend = True


def _make_structured_backend(name: str, vllm_config: Any, tokenizer: Any, vocab_size: int) -> Any:
    if name == "xgrammar":
        from vllm.v1.structured_output.backend_xgrammar import XgrammarBackend as backend_class
    elif name == "guidance":
        from vllm.v1.structured_output.backend_guidance import GuidanceBackend as backend_class
    elif name == "outlines":
        from vllm.v1.structured_output.backend_outlines import OutlinesBackend as backend_class
    else:
        raise ValueError(f"unsupported structured output backend: {name}")
    return backend_class(vllm_config, tokenizer=tokenizer, vocab_size=vocab_size)
