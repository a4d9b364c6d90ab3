"""The triage prompt: what the model is told, rendered from `prompt.json` beside this module.

Training (`loragate train --recipe ticket-triage`) renders tickets through this same class, so an
adapter is trained on exactly the prompt it is served with.
"""

from __future__ import annotations

from pathlib import Path
from string import Template

from pydantic import BaseModel

from service.generation import PromptMessage
from service.tasks.triage.schema import Ticket

PROMPT_FILE = Path(__file__).with_name("prompt.json")


class TriagePrompt(BaseModel):
    system: str
    user: str

    @classmethod
    def load(cls, path: Path = PROMPT_FILE) -> TriagePrompt:
        return cls.model_validate_json(path.read_text())

    def messages(self, ticket: Ticket) -> list[PromptMessage]:
        metadata = "".join(f"{key}: {value}\n" for key, value in (ticket.metadata or {}).items())
        # safe_substitute: `$` in a ticket is data, never a template field.
        user = Template(self.user).safe_substitute(
            subject=ticket.subject or "(none)", body=ticket.body,
            customer_tier=ticket.customer_tier or "unknown", channel=ticket.channel or "unknown",
            metadata=f"Metadata:\n{metadata}" if metadata else "",
        )
        return [PromptMessage(role="system", content=self.system), PromptMessage(role="user", content=user)]
