"""The rollout's step logic as a pure function: every (status, verdict, samples, time) case."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from service.routing.progression import (
    MAX_HISTORY,
    RolloutSpec,
    RolloutState,
    decide,
    paused,
    required_samples,
    resumed,
    rolled_back,
    started,
    weights,
)

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
SPEC = RolloutSpec(candidate="triage-v7", steps=[5, 25, 50, 100], min_samples=50, min_interval_s=300)


def later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def at_step(index: int, status: str = "progressing") -> RolloutState:
    return started(SPEC, T0).model_copy(update={"step_index": index, "step": SPEC.steps[index], "status": status})


@pytest.mark.parametrize("steps, message", [
    ([], "at least 1"),
    ([0, 100], "1..100"),
    ([5, 101], "1..100"),
    ([-5, 100], "1..100"),
    ([25, 5, 100], "strictly increasing"),
    ([5, 5, 100], "strictly increasing"),
    ([5, 25, 50], "last step must be 100"),
    (list(range(1, 22)) + [100], "at most 20"),
])
def test_steps_are_validated(steps: list[int], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        RolloutSpec(candidate="c", steps=steps)
    assert caught.value.errors()[0]["loc"][0] == "steps"


def test_spec_is_strict() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        RolloutSpec.model_validate({"candidate": "c", "steps": [100], "speed": "fast"})
    for field, value in (("min_samples", 0), ("min_interval_s", -1), ("candidate", "")):
        with pytest.raises(ValidationError) as caught:
            RolloutSpec.model_validate({"candidate": "c", "steps": [100], field: value})
        assert caught.value.errors()[0]["loc"] == (field,)
    assert RolloutSpec(candidate="c", steps=[100]).steps == [100]  # one step: straight to all traffic


def test_a_rollout_starts_at_its_first_step() -> None:
    state = started(SPEC, T0, caller="ops")
    assert (state.status, state.step_index, state.step, state.advanced_at) == ("progressing", 0, 5, T0)
    assert state.reason is None
    assert [(e.transition, e.step, e.caller) for e in state.history] == [("started", 5, "ops")]
    assert weights(state) == (95.0, 5.0)


def test_it_advances_only_with_enough_samples_and_time() -> None:
    state = at_step(0)
    assert decide(SPEC, state, None, 49, later(10_000)) is state  # too few samples
    assert decide(SPEC, state, None, 50, later(299)) is state  # too early
    advanced = decide(SPEC, state, None, 50, later(300))
    assert (advanced.status, advanced.step_index, advanced.step) == ("progressing", 1, 25)
    assert advanced.advanced_at == later(300)
    assert advanced.history[-1].transition == "advanced" and advanced.history[-1].step == 25
    assert weights(advanced) == (75.0, 25.0)
    assert state.step == 5  # pure: the input is not changed
    # the interval counts from the last advance
    assert decide(SPEC, advanced, None, 500, later(599)) is advanced
    assert decide(SPEC, advanced, None, 500, later(600)).step == 50


def test_the_guard_min_samples_is_a_floor() -> None:
    state = at_step(0)
    assert required_samples(SPEC, 80) == 80 and required_samples(SPEC, 20) == 50
    assert decide(SPEC, state, None, 60, later(300), guard_min_samples=80) is state
    assert decide(SPEC, state, None, 80, later(300), guard_min_samples=80).step == 25


def test_the_last_step_completes() -> None:
    done = decide(SPEC, at_step(2), None, 50, later(300))
    assert (done.status, done.step_index, done.step) == ("completed", 3, 100)
    assert done.history[-1].transition == "completed" and weights(done) == (0.0, 100.0)
    assert decide(SPEC, done, None, 10_000, later(10_000)) is done  # nothing after completion
    assert decide(SPEC, done, "error_rate 0.5 > 0.1", 10_000, later(10_000)) is done  # the guard handles it
    single = started(RolloutSpec(candidate="c", steps=[100]), T0)  # one step: all traffic at once
    assert (single.status, single.step) == ("completed", 100)


@pytest.mark.parametrize("status", ["progressing", "paused"])
@pytest.mark.parametrize("samples", [0, 49, 50])
def test_a_breach_rolls_back_whatever_the_samples_and_time(status: str, samples: int) -> None:
    state = at_step(1, status)
    after = decide(SPEC, state, "invalid_rate 0.600 > 0.1 over 20 structured replies", samples, later(1))
    assert (after.status, after.step, after.step_index) == ("rolled_back", 0, 1)
    assert after.reason == "invalid_rate 0.600 > 0.1 over 20 structured replies"
    assert after.history[-1].transition == "rolled_back" and after.history[-1].reason == after.reason
    assert weights(after) == (100.0, 0.0)


def test_a_rolled_back_rollout_stays_rolled_back() -> None:
    gone = rolled_back(at_step(1), "error_rate 0.5 > 0.1", later(1))
    assert decide(SPEC, gone, None, 10_000, later(10_000)) is gone
    assert decide(SPEC, gone, "error_rate 0.9 > 0.1", 10_000, later(10_000)) is gone


def test_a_paused_rollout_holds_its_step() -> None:
    state = paused(at_step(1), later(1), caller="ops")
    assert state.status == "paused" and state.step == 25 and state.history[-1].caller == "ops"
    assert decide(SPEC, state, None, 10_000, later(10_000)) is state
    again = resumed(state, later(2), caller="ops")
    assert again.status == "progressing" and again.advanced_at == state.advanced_at
    assert decide(SPEC, again, None, 50, later(10_000)).step == 50


def test_abort_is_a_rollback_with_its_reason() -> None:
    aborted = rolled_back(at_step(2), "aborted by ops", later(5), caller="ops", transition="aborted")
    assert (aborted.status, aborted.step, aborted.reason) == ("rolled_back", 0, "aborted by ops")
    assert (aborted.history[-1].transition, aborted.history[-1].caller) == ("aborted", "ops")


def test_the_history_is_bounded() -> None:
    state = at_step(0)
    for i in range(MAX_HISTORY + 10):
        state = paused(state, later(i)) if i % 2 == 0 else resumed(state, later(i))
    assert len(state.history) == MAX_HISTORY and state.history[-1].at == later(MAX_HISTORY + 9)


def test_every_step_in_turn_to_completion() -> None:
    state, now, seen = started(SPEC, T0), T0, []
    while state.status == "progressing":
        now += timedelta(seconds=SPEC.min_interval_s)
        state = decide(SPEC, state, None, SPEC.min_samples, now)
        seen.append(state.step)
    assert seen == [25, 50, 100] and state.status == "completed"
    assert [e.transition for e in state.history] == ["started", "advanced", "advanced", "completed"]
