"""The learning-rate schedule (transformers' helpers in trainer.lr_scheduler) gives, step for step,
the rates of the formula the trainer used before, kept here as the reference."""

from __future__ import annotations

import json
import math

import pytest
import torch

from service.training.trainer import lr_scheduler


def reference_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """The trainer's own formula before it used transformers: linear warmup from 1/(warmup + 1),
    then cosine or linear decay to 10% of the peak."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    decay = 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else 1 - progress
    return 0.1 + 0.9 * decay


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
@pytest.mark.parametrize(("total", "warmup_ratio", "peak"), [
    (60, 0.05, 5e-4),  # adapters/brand-voice
    (230, 0.05, 8e-4),  # adapters/ticket-triage
    (360, 0.05, 3e-4), (100, 0.0, 3e-4), (17, 0.3, 1e-3), (2, 0.5, 3e-4), (1, 0.0, 3e-4), (1, 0.5, 3e-4),
])
def test_schedule_matches_the_reference_formula(schedule: str, total: int, warmup_ratio: float, peak: float) -> None:
    warmup = math.ceil(warmup_ratio * total)  # as train() computes it
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    scheduler = lr_scheduler(optimizer, total, warmup, schedule)
    for step in range(total + 1):  # the rate each step trains at, and the one saved after the last
        assert scheduler.get_last_lr()[0] / peak == pytest.approx(reference_factor(step, total, warmup, schedule),
                                                                  rel=0, abs=1e-12), step
        optimizer.step()
        scheduler.step()


def test_the_scheduler_state_stays_json() -> None:
    """The checkpoint stores the scheduler's state as JSON, and a resumed run carries on the schedule."""
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    scheduler = lr_scheduler(optimizer, 50, 3, "cosine")
    for _ in range(7):
        optimizer.step()
        scheduler.step()
    state = json.loads(json.dumps(scheduler.state_dict()))
    resumed = lr_scheduler(optimizer, 50, 3, "cosine")
    resumed.load_state_dict(state)
    assert resumed.last_epoch == 7
    scheduler.step()
    resumed.step()
    assert resumed.get_last_lr() == scheduler.get_last_lr()
