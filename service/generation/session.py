"""One request's session: `async with generation.session(request) as session:` checks and resolves
the request and leases its adapter version on entry, runs or streams it through the one decoding
loop, and on exit releases the lease and starts the route's shadow. Callers never release anything."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from service.adapters import NO_LEASE, Lease
from service.engine import GenerationDelta
from service.generation.types import GenerationRequest, GenerationResult, PreparedGeneration
from service.routing import ServingTarget
from service.structured import ValidationResult

if TYPE_CHECKING:
    from service.generation.service import GenerationService


class GenerationSession:
    def __init__(self, service: GenerationService, request: GenerationRequest) -> None:
        self._service = service
        self._request = request
        self._prepared: PreparedGeneration | None = None
        self._lease: Lease = NO_LEASE
        self._shadow: tuple[PreparedGeneration, Lease] | None = None
        self._started = False
        # A structured stream's verdict, set before its last step is yielded.
        self.structured_output: ValidationResult | None = None
        # Prompt tokens of the reply's attempt read from the prefix cache; set with the result (a
        # stream: once its last step is yielded). None: not reported.
        self.cached_prompt_tokens: int | None = None

    async def __aenter__(self) -> GenerationSession:
        self._prepared, self._lease, self._shadow = await self._service.prepare(self._request)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the lease; mirror the request to its shadow once the client's reply is done (a
        shadow never delays it), or release the shadow's lease if the request never ran."""
        self._lease.release()
        shadow, self._shadow = self._shadow, None
        if shadow is None:
            return
        if self._started:
            self._service.mirror(*shadow, outcome=self._request.shadow_outcome)
        else:
            shadow[1].release()

    @property
    def prepared(self) -> PreparedGeneration:
        if self._prepared is None:
            raise RuntimeError("a generation session is used inside `async with`")
        return self._prepared

    @property
    def target(self) -> ServingTarget:
        return self.prepared.target

    @property
    def prompt_tokens(self) -> int:
        return len(self.prepared.prompt_token_ids)

    @property
    def echo_text(self) -> str:
        return self.prepared.echo_text

    async def run(self) -> GenerationResult:
        """Generate the whole reply."""
        self._started = True
        result = await self._service.decoder.run(self.prepared)
        self.cached_prompt_tokens = result.cached_prompt_tokens
        return result

    async def stream(self) -> AsyncIterator[list[GenerationDelta]]:
        """Each engine step's deltas. A structured stream's verdict is on `structured_output` before
        its last deltas are yielded; a strict one that fails validation ends with
        UpstreamGenerationError instead of them."""
        self._started = True
        async for event in self._service.decoder.decode(self.prepared, stream=True):
            if isinstance(event, GenerationResult):
                self.structured_output = event.structured_output
                self.cached_prompt_tokens = event.cached_prompt_tokens
            else:
                yield event
