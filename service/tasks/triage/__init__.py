"""Ticket triage: the schema, the prompt and the service (free of HTTP types)."""

from service.tasks.triage.prompt import PROMPT_FILE, TriagePrompt
from service.tasks.triage.schema import (
    Category,
    Priority,
    Ticket,
    TicketTriage,
    TriageMeta,
    TriageResponse,
    parse_triage_reply,
)
from service.tasks.triage.service import REPETITION_PENALTY, TriageService
from service.tasks.triage.settings import TriageSettings

__all__ = [
    "PROMPT_FILE", "REPETITION_PENALTY", "Category", "Priority", "Ticket", "TicketTriage", "TriageMeta", "TriagePrompt",
    "TriageResponse", "TriageService", "TriageSettings", "parse_triage_reply",
]
