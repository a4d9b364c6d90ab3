"""Reference greedy generations from transformers (and peft for adapters), and the comparison
vLLM's own model tests use (`check_logprobs_close`): sequences may part only on a near tie."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TOP_K = 5  # where two greedy sequences first differ, each token must be in the other's top 5
FIRST_STEP_TOP = 50  # first-step log probabilities a reference keeps, to compare distributions


@dataclass(frozen=True)
class Greedy:
    """One greedy continuation: its tokens (as text), the top-k tokens at every position, and the
    log probabilities of the first step's most likely tokens (the same prompt on every side)."""

    tokens: list[str]
    top: list[set[str]]
    first_step: dict[str, float]


def reference_greedy(
    model_dir: Path, prompts: list[str], max_new_tokens: int, adapter_dir: Path | None = None,
    dtype: str = "float32",
) -> list[Greedy]:
    """Greedy continuations of raw-text prompts by transformers, through peft when given an adapter.
    Exactly `max_new_tokens` each (end of sequence suppressed, as the server's `min_tokens` does);
    the top-k are of the raw logits, as vLLM's logprobs are."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype))
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir))
    model.eval()
    results = []
    with torch.no_grad():
        for prompt in prompts:
            inputs = tokenizer(prompt, return_tensors="pt")
            out = model.generate(
                **inputs, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, do_sample=False,
                output_logits=True,
                return_dict_in_generate=True, pad_token_id=tokenizer.eos_token_id,
            )
            new_ids = out.sequences[0, inputs["input_ids"].shape[1]:].tolist()
            tops = [torch.topk(logits[0].float(), TOP_K).indices.tolist() for logits in out.logits]
            first = torch.topk(torch.log_softmax(out.logits[0][0].float(), dim=-1), FIRST_STEP_TOP)
            results.append(Greedy(
                tokens=[tokenizer.decode([i]) for i in new_ids],
                top=[{tokenizer.decode([i]) for i in ids} for ids in tops],
                first_step={tokenizer.decode([i]): v for i, v in zip(first.indices.tolist(), first.values.tolist())},
            ))
    return results


def first_difference(a: Greedy, b: Greedy) -> int | None:
    """Index of the first differing token within the shorter sequence, or None."""
    for i, (x, y) in enumerate(zip(a.tokens, b.tokens)):
        if x != y:
            return i
    return None


def assert_close(served: Greedy, reference: Greedy, context: str) -> None:
    """Equal, or parted on a near tie: each side's token in the other's top-k where they first differ."""
    i = first_difference(served, reference)
    if i is None:
        return
    assert served.tokens[i] in reference.top[i] and reference.tokens[i] in served.top[i], (
        f"{context}: token {i} differs beyond a near tie: served {served.tokens[i]!r} (reference top "
        f"{sorted(reference.top[i])}), reference {reference.tokens[i]!r} (served top {sorted(served.top[i])}); "
        f"served so far {''.join(served.tokens[:i])!r}"
    )


def first_step_distance(served: Greedy, reference: Greedy) -> float:
    """Mean absolute difference of the first step's log probabilities over the served top tokens
    (a token beyond the reference's top 50 counts as its 50th value). A near-tie flip later in the
    reply cannot hide a dropped adapter here: the first step sees the same prompt on both sides."""
    floor = min(reference.first_step.values())
    gaps = [abs(lp - reference.first_step.get(token, floor)) for token, lp in served.first_step.items()]
    return sum(gaps) / len(gaps)


def shared_prefix(a: Greedy, b: Greedy) -> int:
    i = first_difference(a, b)
    return min(len(a.tokens), len(b.tokens)) if i is None else i
