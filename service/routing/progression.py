"""Automatic progressive rollout: the candidate's share of a route grows step by step while the
route's guard holds, and drops to 0 on a breach.

A rollout route has exactly two variants: the control (the first) and the candidate. The candidate's
weight is the current step (percent of the route's traffic), the control's the rest. A step
advances when the candidate has at least `min_samples` requests of the current step (every step
is a new route version, so these are the requests of the current version) with no guard breach,
and `min_interval_s` has passed since the last advance; a breach rolls the candidate back to 0 and
stops the rollout (`rolled_back`); reaching the last step (100) completes it.

This module holds the rollout's models and the step logic as pure functions of (state, verdict,
samples, now); the registry stores and applies the results, the guard loop feeds them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.numbers import StrictScalars

RolloutStatus = Literal["progressing", "paused", "rolled_back", "completed"]
# What moved a rollout: bounded, so it can label a counter.
Transition = Literal["started", "advanced", "completed", "rolled_back", "paused", "resumed", "aborted"]
TRANSITIONS: tuple[Transition, ...] = ("started", "advanced", "completed", "rolled_back", "paused", "resumed",
                                        "aborted")
MAX_STEPS = 20
MAX_HISTORY = 50  # the oldest history entries are dropped beyond this


class RolloutSpec(StrictScalars):
    """What a client sets: the candidate and the steps its share of traffic goes through."""

    model_config = ConfigDict(extra="forbid")

    candidate: str = Field(min_length=1, description="The adapter (or base model) rolled out; the route's "
                           "control is its first variant.")
    steps: list[int] = Field(min_length=1, max_length=MAX_STEPS, description="The candidate's share of the "
                             "route's traffic at each step, in percent: strictly increasing, each in 1..100, "
                             "the last 100.")
    min_samples: int = Field(50, ge=1, description="Candidate requests a step needs (and the guard must hold "
                             "over) before it advances; at least the guard's own min_samples.")
    min_interval_s: float = Field(300.0, ge=0, description="Seconds a step lasts at least.")

    @field_validator("steps")
    @classmethod
    def _increasing(cls, steps: list[int]) -> list[int]:
        if any(not 1 <= step <= 100 for step in steps):
            raise ValueError("each step must be a percent in 1..100")
        if any(b <= a for a, b in zip(steps, steps[1:])):
            raise ValueError("the steps must be strictly increasing")
        if steps[-1] != 100:
            raise ValueError("the last step must be 100 (the rollout completes with all traffic on the candidate)")
        return steps


class RolloutEvent(BaseModel):
    at: datetime
    transition: Transition
    status: RolloutStatus
    step: int = Field(description="The candidate's percent of traffic after the transition.")
    reason: str | None = None
    caller: str | None = Field(None, description="Key id of an API change; None for the service itself.")


class RolloutState(BaseModel):
    """Where a rollout stands (stored with the route, so it survives restarts)."""

    status: RolloutStatus = "progressing"
    step_index: int = Field(0, ge=0, description="Index in `steps` of the current step.")
    step: int = Field(description="The candidate's percent of traffic now (0 after a rollback or abort).")
    advanced_at: datetime = Field(description="When the current step began.")
    reason: str | None = Field(None, description="Why it was rolled back (a guard breach or an abort).")
    history: list[RolloutEvent] = Field(default_factory=list)


def _event(state: RolloutState, transition: Transition, now: datetime, reason: str | None,
           caller: str | None) -> list[RolloutEvent]:
    event = RolloutEvent(at=now, transition=transition, status=state.status, step=state.step, reason=reason,
                         caller=caller)
    return [*state.history, event][-MAX_HISTORY:]


def _with(state: RolloutState, transition: Transition, now: datetime, why: str | None = None,
          caller: str | None = None, **changes: object) -> RolloutState:
    updated = state.model_copy(update=changes)
    return updated.model_copy(update={"history": _event(updated, transition, now, why, caller)})


def started(spec: RolloutSpec, now: datetime, caller: str | None = None) -> RolloutState:
    """A new rollout: the candidate at the first step (completed at once if that is 100)."""
    state = RolloutState(step=spec.steps[0], advanced_at=now, status="completed" if spec.steps[0] >= 100 else
                         "progressing")
    return _with(state, "started", now, caller=caller)


def required_samples(spec: RolloutSpec, guard_min_samples: int) -> int:
    """A step never advances before the guard could judge it."""
    return max(spec.min_samples, guard_min_samples)


def decide(spec: RolloutSpec, state: RolloutState, breach: str | None, samples: int, now: datetime,
           guard_min_samples: int = 1, held: str | None = None) -> RolloutState:
    """The step logic: the state after a guard check of the current step.

    `breach`: why the candidate breaks the guard over the current step's requests (None: it holds);
    `samples`: the candidate's requests of the current step; `held`: the figures the guard held on,
    recorded with an advance. Returns `state` itself when nothing changes. Only a progressing
    rollout advances; a breach stops a progressing or paused one.
    """
    if state.status not in ("progressing", "paused"):
        return state
    if breach is not None:
        return rolled_back(state, breach, now)
    if state.status != "progressing" or samples < required_samples(spec, guard_min_samples):
        return state
    if (now - state.advanced_at).total_seconds() < spec.min_interval_s:
        return state
    index = min(state.step_index + 1, len(spec.steps) - 1)
    step = spec.steps[index]
    if step >= 100:
        return _with(state, "completed", now, held, status="completed", step_index=index, step=100, advanced_at=now)
    return _with(state, "advanced", now, held, step_index=index, step=step, advanced_at=now)


def rolled_back(state: RolloutState, reason: str, now: datetime, caller: str | None = None,
                transition: Transition = "rolled_back") -> RolloutState:
    """The candidate back to 0: by a guard breach, or an abort (`transition="aborted"`)."""
    return _with(state, transition, now, reason, caller, status="rolled_back", step=0, reason=reason)


def paused(state: RolloutState, now: datetime, caller: str | None = None) -> RolloutState:
    return _with(state, "paused", now, caller=caller, status="paused")


def resumed(state: RolloutState, now: datetime, caller: str | None = None) -> RolloutState:
    return _with(state, "resumed", now, caller=caller, status="progressing")


def weights(state: RolloutState) -> tuple[float, float]:
    """(control, candidate) weights of the state's step."""
    return float(100 - state.step), float(state.step)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
