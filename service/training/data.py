"""Recipe records -> token ids and labels, rendered exactly as the server renders requests.

The server applies the chat template with `add_generation_prompt=True` and tokenizes without
adding special tokens; the answer the model must learn follows that prompt and ends with the
template's end-of-turn token, so an unconstrained adapter stops right after its answer. Only the
answer is trained on (prompt labels are -100). For ticket-triage the few tokens that carry the
category and priority values can weigh more in the loss: they are ~3 of ~68 answer tokens, and
with plain weights a run spends nearly all its signal on the free-text summary. So can the quote
marks of a phrase the answer restates from the ticket ('ERR_CONNECTION_RESET'): the recipe writes
them as single quotes, and an adapter that copies the ticket's double quotes instead breaks its
unconstrained JSON, yet they are ~2-4 tokens in the 7% of answers that restate a quote.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

IGNORE_INDEX = -100  # label of a token the loss skips
END_OF_TURN = "<|im_end|>"  # SmolLM2's chat-template end of turn (also its eos token)

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Example:
    id: str
    input_ids: list[int]
    labels: list[int]
    prompt_len: int  # input_ids[:prompt_len] is exactly what the server sends
    record: dict[str, Any] = field(repr=False, compare=False)
    # Loss weight per position (None: 1 on every answer token).
    weights: list[float] | None = field(default=None, repr=False, compare=False)
    # Per position: 1 on the first token of the category value, 2 on the priority value's, 3 on a
    # restated quote mark (ticket-triage), else 0; validation reports teacher-forced accuracy on
    # them, a cheap signal.
    fields: list[int] | None = field(default=None, repr=False, compare=False)

    @property
    def prompt_ids(self) -> list[int]:
        return self.input_ids[: self.prompt_len]


def read_jsonl(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON: {exc}") from exc
            if limit is not None and len(records) >= limit:
                break
    return records


# ---------------------------------------------------------------------------- ticket-triage


@cache
def _triage_prompt() -> Any:
    from service.tasks.triage import TriagePrompt

    return TriagePrompt.load()


def triage_messages(record: dict[str, Any]) -> Messages:
    """The triage endpoint's system + user messages for a ticket record."""
    from service.tasks.triage import Ticket

    ticket = Ticket(
        subject=record.get("subject") or "", body=record["body"],
        customer_tier=record.get("customer_tier"), channel=record.get("channel"),
        metadata=record.get("metadata"),
    )
    return [{"role": m.role, "content": m.content} for m in _triage_prompt().messages(ticket)]


def triage_answer(record: dict[str, Any]) -> str:
    """The compact JSON the constrained decoder produces (schema key order, no whitespace)."""
    from service.tasks.triage import TicketTriage

    fields = ("category", "priority", "summary", "suggested_action")
    answer = {key: record[key] for key in fields}
    # A restated phrase is quoted with single quotes (the recipe writes them so): a double quote
    # would need a JSON escape, which a small adapter often gets wrong unconstrained. Hand-labelled
    # data is brought to the same convention.
    for key in FREE_TEXT_FIELDS:
        answer[key] = answer[key].replace('"', "'")
    return TicketTriage.model_validate(answer).model_dump_json()


# ---------------------------------------------------------------------------- brand-voice


def voice_messages(record: dict[str, Any]) -> Messages:
    # No system message: the chat template adds SmolLM2's default one, as it does when served.
    return [{"role": "user", "content": record["message"]}]


def voice_answer(record: dict[str, Any]) -> str:
    return record["reply"]


RECIPE_FORMATS: dict[str, tuple[Callable[[dict[str, Any]], Messages], Callable[[dict[str, Any]], str]]] = {
    "ticket-triage": (triage_messages, triage_answer),
    "brand-voice": (voice_messages, voice_answer),
}


# ---------------------------------------------------------------------------- tokenization


def render_prompt(tokenizer: Any, messages: Messages) -> list[int]:
    """Token ids of a chat prompt, the way the server renders it."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return list(tokenizer.encode(text, add_special_tokens=False))


def end_of_turn_id(tokenizer: Any) -> int:
    ids = tokenizer.encode(END_OF_TURN, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"{END_OF_TURN} is not a single token for this tokenizer: {ids}")
    return ids[0]


LABEL_FIELDS = ("category", "priority")  # Example.fields numbers them 1 and 2
FIELD_NAMES = (*LABEL_FIELDS, "quote")  # Example.fields 1, 2, 3
QUOTE_FIELD = FIELD_NAMES.index("quote") + 1  # Example.fields number of a restated quote mark
FREE_TEXT_FIELDS = ("summary", "suggested_action")
LabelFactors = dict[str, dict[str, float]]  # field -> label -> loss-weight factor


@dataclass(frozen=True)
class AnswerWeights:
    """Loss weights of a triage answer's deciding tokens; the defaults are the plain loss."""

    category: float = 1.0  # the category value's tokens
    priority: float = 1.0  # the priority value's tokens
    quote: float = 1.0  # the quote marks of a phrase restated from the ticket
    label_factors: LabelFactors | None = None  # per-label factors on the category and priority weights

    @property
    def plain(self) -> bool:
        return (self.category, self.priority, self.quote) == (1.0, 1.0, 1.0) and not self.label_factors

    def for_record(self, record: dict[str, Any]) -> list[float]:
        """Weight per `Example.fields` number (0: any other answer token)."""
        labels = [weight * (self.label_factors[key][record[key]] if self.label_factors else 1.0)
                  for key, weight in zip(LABEL_FIELDS, (self.category, self.priority), strict=True)]
        return [1.0, *labels, self.quote]


PLAIN_LOSS = AnswerWeights()


def balanced_label_factors(records: list[dict[str, Any]]) -> LabelFactors:
    """Inverse-frequency factors (mean 1 over the records) for each label field, so a rare label
    (urgent: 14% of the training tickets) weighs as much in the loss as a common one (low: 35%)."""
    factors: LabelFactors = {}
    for key in LABEL_FIELDS:
        counts = Counter(record[key] for record in records)
        factors[key] = {label: len(records) / (len(counts) * count) for label, count in counts.items()}
    return factors


def encode_example(tokenizer: Any, recipe: str, record: dict[str, Any],
                   answer_weights: AnswerWeights = PLAIN_LOSS) -> Example:
    messages_of, answer_of = RECIPE_FORMATS[recipe]
    prompt = render_prompt(tokenizer, messages_of(record))
    # Tokenized on its own, as generated: the model produces answer tokens after the prompt's.
    text = answer_of(record) + END_OF_TURN
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    answer = list(encoded["input_ids"])
    weights = fields = None
    if recipe == "ticket-triage":
        spans = _value_spans(text, LABEL_FIELDS)
        quotes = _restated_quote_marks(text)
        answer_fields = [next((k + 1 for k, (start, end) in enumerate(spans) if a < end and b > start),
                              QUOTE_FIELD if any(a <= q < b for q in quotes) else 0)
                         for a, b in encoded["offset_mapping"]]
        if not answer_weights.plain:
            field_weights = answer_weights.for_record(record)
            weights = [0.0] * len(prompt) + [field_weights[f] for f in answer_fields]
        # Only a value's first token decides it ("b" of "b|illing"); the rest follow trivially.
        fields = [0] * len(prompt) + [f if i == 0 or answer_fields[i - 1] != f else 0
                                      for i, f in enumerate(answer_fields)]
    return Example(
        id=str(record.get("id", "")), input_ids=prompt + answer, labels=[IGNORE_INDEX] * len(prompt) + answer,
        prompt_len=len(prompt), record=record, weights=weights, fields=fields,
    )


def _value_spans(answer: str, keys: tuple[str, ...]) -> list[tuple[int, int]]:
    """Character spans of the string values of `keys` in the compact JSON answer."""
    spans = []
    for key in keys:
        start = end = answer.index(f'"{key}":"') + len(key) + 4
        while answer[end] != '"':
            end += 2 if answer[end] == "\\" else 1  # an escape sequence is not the closing quote
        spans.append((start, end))
    return spans


def _restated_quote_marks(answer: str) -> list[int]:
    """Offsets of the single quotes that open or close a restated phrase in the free-text values
    ("fails with 'ERR_CONNECTION_RESET'"), not apostrophes inside a word ("customer's")."""
    marks: list[int] = []
    for start, end in _value_spans(answer, FREE_TEXT_FIELDS):
        marks.extend(i for i in range(start, end) if answer[i] == "'"
                     and not (answer[i - 1].isalnum() and answer[i + 1].isalnum()))
    return marks


def encode_records(
    tokenizer: Any, recipe: str, records: list[dict[str, Any]], max_length: int,
    answer_weights: AnswerWeights = PLAIN_LOSS,
) -> tuple[list[Example], list[str]]:
    """Encode records; those longer than `max_length` are skipped (their ids are returned) rather
    than cut, since a cut example would teach answers without their end."""
    examples: list[Example] = []
    skipped: list[str] = []
    for record in records:
        example = encode_example(tokenizer, recipe, record, answer_weights)
        if len(example.input_ids) > max_length:
            skipped.append(example.id)
        else:
            examples.append(example)
    return examples, skipped


# ---------------------------------------------------------------------------- batching


def make_batches(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """One epoch's batches of example indices, deterministic in (seed, epoch).

    Shuffled, then sorted by length within windows of 16 batches, so each batch pads little (CPU
    time is per token) while the order stays random across the epoch.
    """
    rng = random.Random(f"{seed}:{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 16
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda index: lengths[index])
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


class BatchSchedule:
    """The micro-batches of every optimizer step, computable from the step number alone (so a
    resumed run continues with exactly the batches the interrupted one would have used)."""

    def __init__(self, lengths: list[int], batch_size: int, grad_accum: int, seed: int) -> None:
        self.lengths = lengths
        self.batch_size = batch_size
        self.grad_accum = grad_accum
        self.seed = seed
        self._epochs: dict[int, list[list[int]]] = {}
        self.batches_per_epoch = -(-len(lengths) // batch_size)

    @property
    def steps_per_epoch(self) -> float:
        return self.batches_per_epoch / self.grad_accum

    def total_steps(self, epochs: float, max_steps: int | None) -> int:
        if max_steps is not None:
            return max_steps
        return max(1, -(-int(round(epochs * self.batches_per_epoch)) // self.grad_accum))

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        if epoch not in self._epochs:
            self._epochs = {epoch: make_batches(self.lengths, self.batch_size, self.seed, epoch)}
        return self._epochs[epoch]

    def step(self, step: int) -> list[list[int]]:
        """Index lists of the micro-batches of optimizer step `step` (0-based)."""
        micro = []
        for position in range(step * self.grad_accum, (step + 1) * self.grad_accum):
            epoch, index = divmod(position, self.batches_per_epoch)
            micro.append(self.epoch_batches(epoch)[index])
        return micro

    def epoch_at(self, step: int) -> float:
        return (step * self.grad_accum) / self.batches_per_epoch
