"""Ticket triage: the schema, the prompt, label probabilities, the decision policy and the service
(free of HTTP types)."""

from service.tasks.triage.prompt import PROMPT_FILE, TriagePrompt
from service.tasks.triage.schema import (
    CATEGORIES,
    PRIORITIES,
    Category,
    LabelConfidence,
    LabelProbabilities,
    Priority,
    Ticket,
    TicketTriage,
    TriageMeta,
    TriagePolicy,
    TriageResponse,
    TriageThresholds,
    parse_triage_reply,
)
from service.tasks.triage.service import REPETITION_PENALTY, TriageService
from service.tasks.triage.settings import TriageSettings

__all__ = [
    "CATEGORIES", "PRIORITIES", "PROMPT_FILE", "REPETITION_PENALTY", "Category", "LabelConfidence",
    "LabelProbabilities", "Priority", "Ticket", "TicketTriage", "TriageMeta", "TriagePolicy", "TriagePrompt",
    "TriageResponse", "TriageService", "TriageSettings", "TriageThresholds", "parse_triage_reply",
]
