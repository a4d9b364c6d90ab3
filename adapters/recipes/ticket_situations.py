"""The situations the ticket generator draws from: what happened, how customers say it, the labels.

Each `Situation` is one concrete problem or question (a duplicate charge, a parcel marked delivered
that never came), one record of `tables/ticket_situations/<category>.yaml`. `facts` are alternative
ways a customer states the core facts; every one of them contains every slot that the summary and
action need outside their optional `[...]` parts (a unit test checks this), so a label never
restates something the ticket does not say. `details` are optional extra sentences; one starting
with "~ " plays the problem down and is left out when an escalation cue is used. `mods` lists the
escalations that make sense for the situation (see `ticket_triage` for the priority rules):
deadline, blocked, scope, threat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapters.recipes.common import load_table

CATEGORIES = ("billing", "technical", "account", "shipping", "returns", "general")


@dataclass(frozen=True)
class Situation:
    key: str
    category: str
    priority: str  # the base priority the facts alone justify
    kind: str  # problem | request | question | feedback: which tones and asides fit
    mods: frozenset[str]
    subjects: tuple[str, ...]
    facts: tuple[str, ...]
    details: tuple[str, ...]
    summary: str
    action: str
    paid_access: bool = False  # the customer cannot use the service: high for paying tiers

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Situation:
        """A table record; a missing or unknown field is an error (the dataclass's own check)."""
        return cls(**{**record, "mods": frozenset(record["mods"])})


def load_situations(category: str) -> list[Situation]:
    """The situations of one category, in table order (the generator draws by index)."""
    return [Situation.from_record(record) for record in load_table(f"ticket_situations/{category}.yaml")]


SITUATIONS: dict[str, list[Situation]] = {category: load_situations(category) for category in CATEGORIES}
