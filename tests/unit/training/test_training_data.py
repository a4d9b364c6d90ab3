"""What `loragate train` feeds the model is exactly what the server sends and the decoder writes.

Uses the prepared base model's tokenizer (skipped when `loragate prepare-model` has not run); the
forward check uses a tiny random Llama, so nothing here is slow.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.config import Settings
from service.tasks.triage import Ticket, TicketTriage, TriagePrompt
from service.training.config import config_for
from service.training.data import (
    END_OF_TURN,
    IGNORE_INDEX,
    AnswerWeights,
    BatchSchedule,
    _value_spans,
    balanced_label_factors,
    encode_example,
    encode_records,
    make_batches,
    read_jsonl,
    triage_answer,
)
from service.training.recipes import data_files, project_path

TICKET = {
    "id": "u1", "subject": "Refund $40 for order A-77", "body": "Hello,\nI was charged twice ($40) for order A-77.\nThanks",
    "customer_tier": "pro", "channel": "email", "metadata": {"order_id": "A-77", "items": 2},
    "category": "billing", "priority": "high", "summary": "Customer was charged twice for order A-77.",
    "suggested_action": "Confirm the duplicate charge and refund $40.",
}
VOICE = {"id": "v1", "message": "Where is my parcel?", "reply": "Hi there!\nIt left our warehouse today.\nCheers, Team"}


@pytest.fixture(scope="module")
def tokenizer():
    model_dir = Settings().default_model_dir
    if not (model_dir / "tokenizer.json").is_file():
        pytest.skip("the default model is not prepared (run `loragate prepare-model`)")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


def server_prompt_ids(tokenizer, messages: list[dict[str, str]]) -> list[int]:
    """How the engine renders a chat request (service/engine: render_chat)."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer.encode(text, add_special_tokens=False)


def test_triage_prompt_is_the_served_prompt(tokenizer) -> None:
    example = encode_example(tokenizer, "ticket-triage", TICKET)
    ticket = Ticket(subject=TICKET["subject"], body=TICKET["body"], customer_tier="pro", channel="email",
                    metadata=TICKET["metadata"])
    messages = [{"role": m.role, "content": m.content} for m in TriagePrompt.load().messages(ticket)]
    assert example.prompt_ids == server_prompt_ids(tokenizer, messages)
    assert tokenizer.decode(example.prompt_ids).endswith("<|im_start|>assistant\n")


def test_labels_are_ignored_exactly_on_the_prompt(tokenizer) -> None:
    for recipe, record in (("ticket-triage", TICKET), ("brand-voice", VOICE)):
        example = encode_example(tokenizer, recipe, record)
        assert len(example.labels) == len(example.input_ids)
        assert example.labels[: example.prompt_len] == [IGNORE_INDEX] * example.prompt_len
        assert example.labels[example.prompt_len:] == example.input_ids[example.prompt_len:]
        assert IGNORE_INDEX not in example.labels[example.prompt_len:]


def test_triage_answer_is_compact_json_then_end_of_turn(tokenizer) -> None:
    example = encode_example(tokenizer, "ticket-triage", TICKET)
    answer = tokenizer.decode(example.input_ids[example.prompt_len:])
    expected = TicketTriage.model_validate({k: TICKET[k] for k in ("category", "priority", "summary",
                                                                    "suggested_action")}).model_dump_json()
    assert answer == expected + END_OF_TURN
    assert expected == json.dumps(json.loads(expected), separators=(",", ":"))  # no whitespace
    assert list(json.loads(expected)) == list(TicketTriage.model_json_schema()["properties"])  # schema order
    assert example.input_ids[-1] == tokenizer.convert_tokens_to_ids(END_OF_TURN)


def test_voice_uses_the_default_system_prompt_and_reply(tokenizer) -> None:
    example = encode_example(tokenizer, "brand-voice", VOICE)
    assert example.prompt_ids == server_prompt_ids(tokenizer, [{"role": "user", "content": VOICE["message"]}])
    assert "You are a helpful AI assistant named SmolLM" in tokenizer.decode(example.prompt_ids)
    assert tokenizer.decode(example.input_ids[example.prompt_len:]) == VOICE["reply"] + END_OF_TURN


def test_class_token_weight_marks_only_the_category_and_priority_values(tokenizer) -> None:
    example = encode_example(tokenizer, "ticket-triage", TICKET, AnswerWeights(category=5.0, priority=5.0))
    assert example.weights is not None and len(example.weights) == len(example.input_ids)
    assert example.weights[: example.prompt_len] == [0.0] * example.prompt_len
    heavy = [example.input_ids[i] for i, w in enumerate(example.weights) if w == 5.0]
    assert tokenizer.decode(heavy) == "billinghigh"
    assert encode_example(tokenizer, "ticket-triage", TICKET).weights is None  # default: plain loss
    firsts = [(example.fields[i], tokenizer.decode([t])) for i, t in enumerate(example.input_ids) if example.fields[i]]
    assert firsts == [(1, "b"), (2, "high")]  # the deciding first token of each value


QUOTING = dict(
    TICKET, id="q1", body='Checkout says "ERR_CONNECTION_RESET" again.',
    summary="The customer's checkout fails with 'ERR_CONNECTION_RESET'.",
    suggested_action="Reproduce the 'ERR_CONNECTION_RESET' failure and update the customer's ticket.",
)


def test_quote_weight_marks_the_restated_quote_marks_not_apostrophes(tokenizer) -> None:
    example = encode_example(tokenizer, "ticket-triage", QUOTING, AnswerWeights(quote=7.0))
    heavy = [tokenizer.decode([t]) for t, w in zip(example.input_ids, example.weights) if w == 7.0]
    assert len(heavy) == 4 and all("'" in token for token in heavy)  # open and close, twice
    assert not any("'s" in token for token in heavy)  # the customer's: an apostrophe
    quotes = [tokenizer.decode([t]) for t, f in zip(example.input_ids, example.fields) if f == 3]
    assert quotes == heavy
    plain = encode_example(tokenizer, "ticket-triage", QUOTING)
    assert plain.weights is None and plain.fields == example.fields  # marked even without the weight
    assert 3 not in encode_example(tokenizer, "ticket-triage", TICKET).fields  # nothing quoted


def test_double_quotes_of_hand_labelled_answers_become_single_quotes(tokenizer) -> None:
    labelled = dict(QUOTING, summary='Customer wrote "the page shows E-5" twice.')  # JSON would need \"
    assert triage_answer(labelled) == triage_answer(dict(QUOTING, summary="Customer wrote 'the page shows E-5' twice."))
    example = encode_example(tokenizer, "ticket-triage", labelled, AnswerWeights(quote=7.0))
    heavy = [tokenizer.decode([t]) for t, w in zip(example.input_ids, example.weights) if w == 7.0]
    assert len(heavy) == 4  # the summary's pair and the action's pair


def test_a_value_does_not_end_at_an_escaped_quote() -> None:
    # triage_answer writes no double quote into a value any more, but a value may still hold other
    # JSON escapes; the span search must step over every one of them.
    answer = '{"category":"a\\"b\\\\","priority":"low"}'  # category: a, quote, b, backslash
    assert [answer[a:b] for a, b in _value_spans(answer, ("category", "priority"))] == ['a\\"b\\\\', "low"]


def test_priority_weight_is_separate_from_the_category_weight(tokenizer) -> None:
    example = encode_example(tokenizer, "ticket-triage", TICKET, AnswerWeights(category=5.0, priority=12.0))
    weighted = {w: tokenizer.decode([t for t, x in zip(example.input_ids, example.weights) if x == w])
                for w in set(example.weights) - {0.0, 1.0}}
    assert weighted == {5.0: "billing", 12.0: "high"}


def test_balanced_label_factors_weigh_rare_labels_up_with_mean_one() -> None:
    records = [{"category": "billing", "priority": p} for p in ["low"] * 3 + ["urgent"]]
    factors = balanced_label_factors(records)
    assert factors["priority"] == {"low": 4 / 6, "urgent": 2.0}  # 4 tickets / (2 labels x count)
    assert factors["category"] == {"billing": 1.0}
    assert sum(factors["priority"][r["priority"]] for r in records) == len(records)


def test_label_factors_scale_each_value_by_its_own_label(tokenizer) -> None:
    factors = {"category": {"billing": 0.25}, "priority": {"high": 3.0}}
    example = encode_example(tokenizer, "ticket-triage", TICKET,
                             AnswerWeights(category=2.0, priority=2.0, label_factors=factors))
    weighted = {w: tokenizer.decode([t for t, x in zip(example.input_ids, example.weights) if x == w])
                for w in set(example.weights) - {0.0, 1.0}}
    assert weighted == {0.5: "billing", 6.0: "high"}  # 2.0 x 0.25 and 2.0 x 3.0


def test_too_long_examples_are_skipped_not_cut(tokenizer) -> None:
    long = dict(TICKET, id="long", body="word " * 2000)
    examples, skipped = encode_records(tokenizer, "ticket-triage", [TICKET, long], max_length=512)
    assert [e.id for e in examples] == ["u1"] and skipped == ["long"]


def test_batches_cover_each_example_once_per_epoch_and_are_reproducible() -> None:
    lengths = [(i * 37) % 101 for i in range(50)]
    batches = make_batches(lengths, batch_size=4, seed=3, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(50))
    assert batches == make_batches(lengths, batch_size=4, seed=3, epoch=0)
    assert batches != make_batches(lengths, batch_size=4, seed=3, epoch=1)
    # Within a batch, lengths are neighbours in sorted order (little padding).
    assert all(lengths[b[i]] <= lengths[b[i + 1]] for b in batches for i in range(len(b) - 1))


def test_schedule_is_a_function_of_the_step() -> None:
    lengths = list(range(10))
    one, two = BatchSchedule(lengths, 3, 2, seed=1), BatchSchedule(lengths, 3, 2, seed=1)
    assert one.batches_per_epoch == 4 and one.total_steps(epochs=1.0, max_steps=None) == 2
    assert one.total_steps(epochs=1.0, max_steps=7) == 7
    assert [two.step(s) for s in (5, 0, 3)] == [one.step(5), one.step(0), one.step(3)]
    assert one.step(2) == make_batches(lengths, 3, 1, epoch=1)[:2]  # step 2 starts epoch 1


def test_recipe_defaults_and_overrides() -> None:
    config = config_for("ticket-triage", learning_rate=1e-3, target_modules=["v_proj", "q_proj"])
    assert config.learning_rate == 1e-3 and config.target_modules == ["q_proj", "v_proj"]
    assert config_for("ticket-triage", epochs=2.0).max_steps is None  # epochs replace the step budget
    assert config_for("brand-voice").recipe == "brand-voice"
    with pytest.raises(ValueError):
        config_for("ticket-triage", target_modules=["lm_head"])
    with pytest.raises(ValueError):
        config_for("ticket-triage", rank=128)


def test_shared_prefix_forward_equals_plain_forward() -> None:
    """The shared-prefix path gives the plain batched loss and gradients."""
    import torch
    from peft import LoraConfig, get_peft_model

    from service.training.data import Example
    from service.training.forward import batch_loss, collate
    from tests.unit.conftest import tiny_llama_model

    model = get_peft_model(tiny_llama_model(), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                          init_lora_weights=False))
    # 24 common tokens, but the second prompt ends after 21: its answer starts inside them.
    prefix = list(range(3, 27))
    rows = [prefix + [30, 31, 32, 40, 41], prefix + [50, 60, 61], prefix + [70, 71, 72, 73, 80, 81, 82]]
    prompt_lens = [23, 21, 25]
    examples = [Example(str(i), ids, [IGNORE_INDEX] * n + ids[n:], n, {}) for i, (ids, n) in
                enumerate(zip(rows, prompt_lens))]
    results = []
    for shared in (True, False):
        batch = collate(examples, pad_id=0)
        assert batch.shared == 21  # capped at the shortest prompt
        if not shared:
            batch.shared = 0
        model.zero_grad()
        loss = batch_loss(model, batch)
        loss.weighted.backward()
        grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
        assert loss.weighted.item() == pytest.approx(loss.plain, rel=1e-6)  # unit weights
        results.append((loss.plain, loss.tokens, grads))
    (loss_a, n_a, grads_a), (loss_b, n_b, grads_b) = results
    assert n_a == n_b == 6 + 6 + 6
    assert loss_a == pytest.approx(loss_b, rel=1e-5)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads_a, grads_b))


@pytest.mark.parametrize("recipe", ["ticket-triage", "brand-voice"])
def test_shipped_recipe_data_encodes(recipe: str, tokenizer) -> None:
    """Every record of the committed data is valid for its format; a sample encodes within the
    recipe's max length."""
    train_file, validation_file = data_files(recipe)
    if not train_file.is_file():
        pytest.skip(f"{train_file} not generated yet")
    config = config_for(recipe)
    for path in (train_file, validation_file):
        records = read_jsonl(path)
        assert records, path
        if recipe == "ticket-triage":
            for record in records:
                TicketTriage.model_validate({k: record[k] for k in ("category", "priority", "summary",
                                                                    "suggested_action")})
        examples, skipped = encode_records(tokenizer, recipe, records[:200], config.max_length)
        assert len(skipped) <= len(records[:200]) // 50, f"{len(skipped)} of 200 {path.name} examples too long"


def test_extra_examples_join_the_pool_repeated(tmp_path: Path) -> None:
    from service.training.trainer import TrainingError, extra_records

    extra = tmp_path / "ours.jsonl"
    extra.write_text("".join(json.dumps(dict(TICKET, id=f"x{i}")) + "\n" for i in range(3)))
    config = config_for("ticket-triage", extra_train_file=str(extra), extra_train_repeat=2)
    assert [r["id"] for r in extra_records(config)] == ["x0", "x1", "x2"] * 2
    assert extra_records(config.model_copy(update={"extra_train_repeat": 0})) == []
    with pytest.raises(TrainingError, match="does not exist"):
        extra_records(config.model_copy(update={"extra_train_file": str(tmp_path / "missing.jsonl")}))
    relative = config.model_copy(update={"extra_train_file": "adapters/data/triage_handwritten.jsonl"})
    assert len(extra_records(relative)) == 2 * len(read_jsonl(project_path(relative.extra_train_file))) >= 200
    assert config_for("ticket-triage").extra_train_file is None  # the shipped runs train on generated data
