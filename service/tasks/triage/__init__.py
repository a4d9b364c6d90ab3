"""Ticket triage: the schema, the prompt and the service (free of HTTP types)."""

from service.tasks.triage.prompt import PROMPT_FILE, TriagePrompt
from service.tasks.triage.schema import Category, Priority, Ticket, TicketTriage, TriageMeta, TriageResponse
from service.tasks.triage.service import TriageService

__all__ = [
    "PROMPT_FILE", "Category", "Priority", "Ticket", "TicketTriage", "TriageMeta", "TriagePrompt",
    "TriageResponse", "TriageService",
]
