"""Validation metrics at the end of a run: cheap, in-process, greedy and unconstrained.

Unconstrained on purpose: the served triage endpoint constrains the JSON, but an adapter whose
free output already parses is one the constraint rarely has to correct.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from service.training.config import TrainingConfig
from service.training.data import Example
from service.training.forward import Generation, generate_greedy, validation_loss

SAMPLES_KEPT = 3  # generated answers quoted in the model card


def evaluate(config: TrainingConfig, model: Any, tokenizer: Any, validation: list[Example], pad_id: int,
             eos_id: int, progress: Callable[[str], None]) -> dict[str, Any]:
    if not validation:
        return {}
    loss = validation_loss(model, validation, pad_id, config.batch_size)
    metrics: dict[str, Any] = {"validation_loss": round(loss.pop("loss"), 5), "validation_examples": len(validation),
                               **{f"teacher_forced_{k}": round(v, 4) for k, v in loss.items()}}
    limit = len(validation) if config.generation_limit is None else config.generation_limit
    answered = validation[:limit]
    if not answered:
        return metrics
    progress(f"validation loss {metrics['validation_loss']:.4f}; generating {len(answered)} greedy answers")
    # Merged LoRA generates at base-model speed; the adapter is already saved.
    if hasattr(model, "merge_adapter"):
        model.merge_adapter()
    generations = generate_greedy(model, tokenizer, [e.prompt_ids for e in answered], config.max_new_tokens,
                                  eos_id, pad_id, batch_size=config.batch_size)
    metrics["generated"] = len(generations)
    metrics["finished_rate"] = round(sum(g.finished for g in generations) / len(generations), 4)
    scorer = triage_metrics if config.recipe == "ticket-triage" else voice_metrics
    metrics.update(scorer(answered, generations))
    metrics["samples"] = [{"id": e.id, "output": g.text} for e, g in zip(answered[:SAMPLES_KEPT], generations)]
    return metrics


def triage_metrics(examples: list[Example], generations: list[Generation]) -> dict[str, Any]:
    """JSON parse and schema-valid rates (as `loragate eval` defines them), and category / priority
    accuracy over every ticket (an answer that is not schema-valid counts as wrong)."""
    from service.tasks.triage import parse_triage_reply

    parsed, valid, category, priority = 0, 0, 0, 0
    per_category: Counter[str] = Counter()
    per_category_right: Counter[str] = Counter()
    for example, generation in zip(examples, generations):
        expected = example.record
        per_category[expected["category"]] += 1
        is_json, triage = parse_triage_reply(generation.text)
        parsed += is_json
        if triage is None:
            continue
        valid += 1
        category += triage.category == expected["category"]
        priority += triage.priority == expected["priority"]
        per_category_right[expected["category"]] += triage.category == expected["category"]
    n = len(generations)
    return {
        "json_parse_rate": round(parsed / n, 4),
        "schema_valid_rate": round(valid / n, 4),
        "category_accuracy": round(category / n, 4),
        "priority_accuracy": round(priority / n, 4),
        "category_accuracy_by_category": {
            name: round(per_category_right[name] / count, 4) for name, count in sorted(per_category.items())
        },
    }


def voice_metrics(examples: list[Example], generations: list[Generation]) -> dict[str, Any]:
    """Share of replies with the brand greeting, with its sign-off, and with no style problem at
    all, judged by the recipe's own style checker (the generator's style guide)."""
    from service.training.recipes import recipe_module

    recipe = recipe_module("brand-voice")
    n = len(generations)
    greeting = sum(bool(re.match(recipe.GREETINGS, g.text)) for g in generations)
    sign_off = sum(g.text.rstrip().endswith(recipe.SIGN_OFF) for g in generations)
    compliant = sum(not recipe.style_problems(g.text) for g in generations)
    return {"greeting_rate": round(greeting / n, 4), "sign_off_rate": round(sign_off / n, 4),
            "style_compliance_rate": round(compliant / n, 4),
            "mean_reply_tokens": round(sum(g.tokens for g in generations) / n, 1)}
