"""Category-neutral pieces of a ticket: greetings, tones, escalation cues, asides, signatures, threads.

The pieces are data (`tables/ticket_style.yaml`); this module gives them a typed shape. Nothing here
may reveal the category on its own, except `asides` (a short aside about ANOTHER category, the mixed
signal) and the escalation cues in `mods`, which are the text that justifies a raised priority.
Shouting ("URGENT!!!", "ASAP") lives in `fake_urgency` and never changes a label.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.recipes.common import load_table

Phrases = tuple[str, ...]


@dataclass(frozen=True)
class Cue:
    """An escalation cue: what the customer writes, and the clause it adds to the summary."""

    text: str
    clause: str


@dataclass(frozen=True)
class TicketStyle:
    greetings: Phrases
    non_native_greetings: Phrases
    openers: Phrases
    non_native_openers: Phrases
    ramble: Phrases
    backstory: Phrases  # neutral narrative for long tickets, placed after the facts
    tried: dict[str, Phrases]  # per category
    tones: dict[str, Phrases]  # per tone
    non_native_tones: Phrases
    fake_urgency: Phrases
    relaxed: Phrases
    mods: dict[str, tuple[Cue, ...]]  # per escalation: deadline, blocked, scope, threat
    deadline_reasons: dict[str, Phrases]  # per category
    asides: dict[str, Phrases]  # per category the aside is about
    lead_asides: dict[str, Phrases]
    closings: Phrases
    non_native_closings: Phrases
    signatures: Phrases
    sign_notes: Phrases
    disclaimers: Phrases
    generic_subjects: Phrases
    follow_ups: Phrases
    agent_replies: Phrases
    quote_headers: Phrases
    forward_notes: Phrases
    phone_agent_open: Phrases
    phone_agent_probe: Phrases
    phone_agent_close: Phrases
    phone_fillers: Phrases
    form_topics: Phrases
    locales_native: Phrases
    locales_other: Phrases
    misspellings: dict[str, str]  # the sloppy register: word -> misspelt word
    non_native_swaps: dict[str, str]  # the non-native register: text -> rephrasing, in order

    @classmethod
    def load(cls) -> TicketStyle:
        """The table; a missing or unknown piece is an error (the dataclass's own check)."""
        table = load_table("ticket_style.yaml")
        table["mods"] = {mod: tuple(Cue(**cue) for cue in cues) for mod, cues in table["mods"].items()}
        return cls(**table)


STYLE = TicketStyle.load()
