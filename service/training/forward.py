"""Loss and greedy generation for batches of examples, with two CPU savings that change no result:

- A prefix shared by every sequence of a batch (the triage system prompt is ~210 of ~330 tokens)
  is run once and its keys/values broadcast to the batch. Gradients still flow through it (the
  broadcast sums them), so loss and gradients equal the plain batched forward (checked to 1e-6).
- Logits (a 576 x 49152 projection per token) are computed only where a label is trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from service.training.data import FIELD_NAMES, IGNORE_INDEX, Example

MIN_SHARED_PREFIX = 16  # below this the extra forward call is not worth it


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, T), right-padded
    attention_mask: torch.Tensor
    labels: torch.Tensor
    weights: torch.Tensor  # loss weight per position (0 where the label is ignored)
    fields: torch.Tensor  # 1 category value, 2 priority value, 3 quote mark, 0 other (Example.fields)
    shared: int  # leading tokens identical in every row (and unlabelled)

    @property
    def tokens(self) -> int:
        return int(self.attention_mask.sum())

    @property
    def target_tokens(self) -> int:
        return int((self.labels[:, 1:] != IGNORE_INDEX).sum())

    @property
    def target_weight(self) -> float:
        return float(self.weights[:, 1:].sum())


def shared_prefix_len(examples: list[Example]) -> int:
    """Length of the common prefix, kept inside every prompt so it holds no trained label and
    leaves at least one token per row after it."""
    limit = min(min(e.prompt_len for e in examples), min(len(e.input_ids) for e in examples) - 1)
    first = examples[0].input_ids
    length = 0
    while length < limit and all(e.input_ids[length] == first[length] for e in examples):
        length += 1
    return length


def collate(examples: list[Example], pad_id: int) -> Batch:
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    weights = torch.zeros((len(examples), width), dtype=torch.float32)
    fields = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        mask[row, :n] = 1
        labels[row, :n] = torch.tensor(example.labels)
        weights[row, :n] = (torch.tensor(example.weights) if example.weights is not None
                            else (labels[row, :n] != IGNORE_INDEX).float())
        if example.fields is not None:
            fields[row, :n] = torch.tensor(example.fields)
    shared = shared_prefix_len(examples) if len(examples) > 1 else 0
    return Batch(ids, mask, labels, weights, fields, shared if shared >= MIN_SHARED_PREFIX else 0)


def _causal_lm(model: Any) -> Any:
    """The LlamaForCausalLM inside a PEFT wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _hidden_states(model: Any, batch: Batch) -> tuple[torch.Tensor, int]:
    """Last hidden states and the position of their first one (position t predicts label t+1)."""
    from transformers import DynamicCache

    core = _causal_lm(model).model
    if not batch.shared:
        out = core(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)
        return out.last_hidden_state, 0
    p, rows = batch.shared, batch.input_ids.shape[0]
    prefix = core(input_ids=batch.input_ids[:1, :p], use_cache=True)
    cache = DynamicCache(ddp_cache_data=[
        (layer.keys.expand(rows, -1, -1, -1), layer.values.expand(rows, -1, -1, -1))
        for layer in prefix.past_key_values.layers
    ])
    rest = core(input_ids=batch.input_ids[:, p:], attention_mask=batch.attention_mask,
                past_key_values=cache, use_cache=True)
    # The prefix's last state predicts the first token after it.
    hidden = torch.cat([prefix.last_hidden_state[:, -1:].expand(rows, -1, -1), rest.last_hidden_state], dim=1)
    return hidden, p - 1


@dataclass
class BatchLoss:
    weighted: torch.Tensor  # sum of weight x cross-entropy over the answer tokens (the objective)
    plain: float  # unweighted sum of cross-entropy (what is reported)
    tokens: int
    field_hits: tuple[tuple[int, int], ...] = ()  # (right, total) argmax tokens per FIELD_NAMES


def batch_loss(model: Any, batch: Batch) -> BatchLoss:
    """Cross-entropy over the answer tokens, weighted and plain."""
    hidden, first = _hidden_states(model, batch)
    targets = batch.labels[:, first + 1:]
    selected = targets != IGNORE_INDEX
    logits = _causal_lm(model).lm_head(hidden[:, :-1][selected])
    losses = F.cross_entropy(logits.float(), targets[selected], reduction="none")
    weighted = (losses * batch.weights[:, first + 1:][selected]).sum()
    fields = batch.fields[:, first + 1:][selected]
    right = logits.detach().argmax(-1) == targets[selected]
    hits = tuple((int(right[fields == k].sum()), int((fields == k).sum())) for k in range(1, len(FIELD_NAMES) + 1))
    return BatchLoss(weighted, float(losses.detach().sum()), int(selected.sum()), hits)


@torch.no_grad()
def validation_loss(model: Any, examples: list[Example], pad_id: int, batch_size: int = 8) -> dict[str, float]:
    """Mean per-token answer loss over `examples` (eval mode: no dropout), and for triage the
    teacher-forced accuracy of the category and priority value tokens and the restated quote marks."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    total, count = 0.0, 0
    hits = [[0, 0] for _ in FIELD_NAMES]
    for start in range(0, len(order), batch_size):
        chunk = [examples[i] for i in order[start:start + batch_size]]
        loss = batch_loss(model, collate(chunk, pad_id))
        total, count = total + loss.plain, count + loss.tokens
        for k, (right, seen) in enumerate(loss.field_hits):
            hits[k][0] += right
            hits[k][1] += seen
    model.train(was_training)
    result = {"loss": total / max(count, 1)}
    for name, (right, seen) in zip(FIELD_NAMES, hits):
        if seen:
            result[f"{name}_token_accuracy"] = right / seen
    return result


@dataclass
class Generation:
    text: str
    finished: bool  # ended with the end-of-turn token (not cut by the token budget)
    tokens: int


@torch.no_grad()
def generate_greedy(
    model: Any, tokenizer: Any, prompts: list[list[int]], max_new_tokens: int, eos_id: int,
    pad_id: int, batch_size: int = 8,
) -> list[Generation]:
    """Greedy answers to tokenized prompts (left-padded batches of similar length)."""
    model.eval()
    results: list[Generation | None] = [None] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        width = max(len(prompts[i]) for i in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, index in enumerate(chunk):
            n = len(prompts[index])
            ids[row, width - n:] = torch.tensor(prompts[index])
            mask[row, width - n:] = 1
        out = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
            eos_token_id=eos_id, pad_token_id=pad_id,
        )
        for row, index in enumerate(chunk):
            new = out[row, width:].tolist()
            finished = eos_id in new
            if finished:
                new = new[: new.index(eos_id)]
            results[index] = Generation(tokenizer.decode(new, skip_special_tokens=True), finished, len(new))
    return [r for r in results if r is not None]
