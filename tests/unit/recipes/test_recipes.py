"""Unit tests for the adapter data recipes (adapters/recipes): determinism, balance, leaks, committed files.

Pure Python and fast: each generator runs a few times at its default size (well under a second each).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from adapters.recipes import brand_voice, brand_voice_phrases, ticket_phrases, ticket_triage
from adapters.recipes.common import DATA_DIR as DATA
from adapters.recipes.common import fields, normalize, read_jsonl, required_fields
from adapters.recipes.ticket_situations import Situation
TRIAGE_FIELDS = {"id", "subject", "body", "customer_tier", "channel", "category", "priority", "summary",
                 "suggested_action", "metadata"}


@pytest.fixture(scope="module")
def triage() -> ticket_triage.TriageDataset:
    return ticket_triage.generate()


@pytest.fixture(scope="module")
def voice() -> brand_voice.VoiceDataset:
    return brand_voice.generate()


@pytest.fixture(scope="module")
def handwritten() -> list[dict]:
    return [record for path in ticket_triage.HANDWRITTEN_FILES for record in read_jsonl(path)]


def _valid_triage_record(record: dict) -> None:
    assert set(record) == TRIAGE_FIELDS, record.get("id")
    assert record["category"] in ticket_triage.CATEGORIES, record["id"]
    assert record["priority"] in ticket_triage.PRIORITIES, record["id"]
    assert record["customer_tier"] in ticket_triage.TIERS, record["id"]
    assert record["channel"] in ticket_triage.CHANNELS, record["id"]
    assert isinstance(record["subject"], str) and record["body"].strip(), record["id"]
    for label in ("summary", "suggested_action"):
        assert 1 <= len(record[label]) <= 200, (record["id"], label, len(record[label]))
        assert "{" not in record[label] and "[" not in record[label], (record["id"], record[label])
    assert "{" not in record["body"].replace("{{", ""), record["id"]  # no unfilled template slot
    meta = record["metadata"]
    assert meta is None or (isinstance(meta, dict) and all(
        isinstance(v, (str, int, float, bool)) or v is None for v in meta.values())), record["id"]


# --------------------------------------------------------------------------------------------
# Tables (adapters/recipes/tables/*.yaml)
# --------------------------------------------------------------------------------------------

def test_tables_hold_one_record_per_key() -> None:
    situations = [s.key for group in ticket_triage.SITUATIONS.values() for s in group]
    assert len(situations) == len(set(situations))
    assert ticket_triage.B2B_SITUATIONS <= set(situations)
    topics = [t.key for t in brand_voice_phrases.TOPICS]
    assert len(topics) == len(set(topics)) and len(topics) >= 20


def test_a_record_with_an_unknown_or_missing_field_is_refused() -> None:
    record = {"key": "k", "category": "billing", "priority": "low", "kind": "question", "mods": ["deadline"],
              "subjects": ("s",), "facts": ("f",), "details": (), "summary": "s.", "action": "a."}
    assert Situation.from_record(record).mods == frozenset({"deadline"})
    with pytest.raises(TypeError):
        Situation.from_record({**record, "prioirty": "high"})
    with pytest.raises(TypeError):
        Situation.from_record({k: v for k, v in record.items() if k != "facts"})


@pytest.mark.parametrize("module, table, name", [(ticket_phrases, ticket_phrases.P, "P"),
                                                  (brand_voice_phrases, brand_voice_phrases.STORE, "STORE")])
def test_every_pool_of_a_table_is_drawn_from(module: object, table: dict, name: str) -> None:
    """A value pool in the YAML that no slot maker reads would be dead data (or a misspelt key)."""
    source = Path(module.__file__).read_text(encoding="utf-8")
    unused = [key for key in table if f'{name}["{key}"]' not in source and f"{name}['{key}']" not in source]
    assert not unused, unused


# --------------------------------------------------------------------------------------------
# Ticket triage
# --------------------------------------------------------------------------------------------

def test_triage_is_deterministic_per_seed(triage: ticket_triage.TriageDataset) -> None:
    again = ticket_triage.generate()
    assert again.train == triage.train and again.validation == triage.validation
    other = ticket_triage.generate(seed=1)
    assert [r["body"] for r in other.train] != [r["body"] for r in triage.train]


def test_triage_sizes_and_valid_labels(triage: ticket_triage.TriageDataset) -> None:
    assert len(triage.train) >= 2000 and len(triage.validation) >= 300
    for record in triage.train + triage.validation:
        _valid_triage_record(record)
    ids = [r["id"] for r in triage.train + triage.validation]
    assert len(ids) == len(set(ids))


def test_triage_label_balance(triage: ticket_triage.TriageDataset) -> None:
    total = len(triage.train)
    categories = Counter(r["category"] for r in triage.train)
    priorities = Counter(r["priority"] for r in triage.train)
    for category in ticket_triage.CATEGORIES:
        assert 0.12 <= categories[category] / total <= 0.22, categories
    for priority in ticket_triage.PRIORITIES:
        assert priorities[priority] / total >= 0.10, priorities
    for split in (triage.train, triage.validation):  # every channel and tier, including unknown, occurs
        assert set(r["channel"] for r in split) == set(ticket_triage.CHANNELS)
        assert set(r["customer_tier"] for r in split) == set(ticket_triage.TIERS)


def test_triage_train_and_validation_share_no_body(triage: ticket_triage.TriageDataset) -> None:
    train = {normalize(r["body"]) for r in triage.train}
    validation = {normalize(r["body"]) for r in triage.validation}
    assert len(train) == len(triage.train) and len(validation) == len(triage.validation)
    assert not train & validation


def _shingles(text: str, n: int = 12) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def test_handwritten_set_shares_nothing_with_generated(triage: ticket_triage.TriageDataset,
                                                       handwritten: list[dict]) -> None:
    generated = triage.train + triage.validation
    assert not {normalize(r["body"]) for r in handwritten} & {normalize(r["body"]) for r in generated}
    # Stronger: no 12-word run of a hand-written body appears in any generated body.
    held_out = set().union(*(_shingles(r["body"]) for r in handwritten))
    leaked = [r["id"] for r in generated if _shingles(r["body"]) & held_out]
    assert not leaked, leaked[:5]


def test_handwritten_sets_are_valid(handwritten: list[dict]) -> None:
    assert len(handwritten) >= 160
    for record in handwritten:
        _valid_triage_record(record)
    assert len({r["id"] for r in handwritten}) == len(handwritten)
    assert len({normalize(r["body"]) for r in handwritten}) == len(handwritten)
    assert set(r["category"] for r in handwritten) == set(ticket_triage.CATEGORIES)
    assert set(r["priority"] for r in handwritten) == set(ticket_triage.PRIORITIES)


def test_committed_triage_files_match_the_generator(tmp_path: Path) -> None:
    ticket_triage.write(tmp_path)
    for name in (ticket_triage.TRAIN_FILE, ticket_triage.VALIDATION_FILE):
        assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes(), (
            f"{name} is stale: run `python -m adapters.recipes.ticket_triage --out adapters/data`")


def test_every_situation_grounds_its_labels() -> None:
    """Each phrasing of a situation states every fact the summary and action must restate."""
    known = set(ticket_triage.MAKERS) | {"reason", "subject"}
    for category, situations in ticket_triage.SITUATIONS.items():
        assert len(situations) >= 24, category
        for situation in situations:
            assert situation.category == category and situation.priority in ticket_triage.PRIORITIES
            needed = required_fields(situation.summary) | required_fields(situation.action)
            for fact in situation.facts:
                assert needed <= fields(fact), (situation.key, needed - fields(fact), fact)
            for text in (*situation.facts, *situation.details, *situation.subjects, situation.summary, situation.action):
                assert fields(text) <= known, (situation.key, fields(text) - known)


def test_priority_rules() -> None:
    by_key = {s.key: s for group in ticket_triage.SITUATIONS.values() for s in group}
    rule = ticket_triage.priority_for
    assert rule(by_key["feature_request"], None, "enterprise") == "low"  # enterprise never raises feedback
    assert rule(by_key["slow_performance"], None, "enterprise") == "high"  # ...but raises a real problem
    assert rule(by_key["slow_performance"], None, "pro") == "medium"
    assert rule(by_key["reset_email_missing"], None, "free") == "medium"  # locked out of a free account
    assert rule(by_key["reset_email_missing"], None, "pro") == "high"  # locked out of a paid service
    assert rule(by_key["invoice_copy"], "deadline", None) == "high"
    assert rule(by_key["api_errors"], "scope", "free") == "urgent"
    assert rule(by_key["charged_after_cancel"], "threat", None) == "urgent"


def test_shouting_does_not_set_the_priority(triage: ticket_triage.TriageDataset) -> None:
    shouted = [r for r in triage.train if "URGENT" in r["subject"].upper() or "ASAP" in r["body"].upper()]
    assert {"low", "medium"} <= {r["priority"] for r in shouted}
    calm_urgent = [r for r in triage.train if r["priority"] == "urgent" and not re.search(
        r"urgent|asap|!!|immediately", r["subject"] + r["body"], re.IGNORECASE)]
    assert len(calm_urgent) >= 50


def test_triage_answers_need_no_json_escape(triage: ticket_triage.TriageDataset) -> None:
    """What the customer quotes is restated in single quotes: an answer the model learns to write
    must stay valid JSON without an escape sequence."""
    records = triage.train + triage.validation
    for record in records:
        for label in ("summary", "suggested_action"):
            assert '"' not in record[label] and "\\" not in record[label], (record["id"], record[label])
    assert sum("'" in r["summary"] and '"' in r["body"] for r in records) >= 50  # quotes were restated


def test_triage_variety(triage: ticket_triage.TriageDataset) -> None:
    bodies = [r["body"] for r in triage.train]
    lengths = sorted(len(b) for b in bodies)
    assert lengths[len(lengths) // 10] < 120 and lengths[len(lengths) * 95 // 100] > 650  # one-liners to letters
    assert sum("\n> " in b or b.startswith(">") or "\n>" in b for b in bodies) >= 100  # quoted replies
    assert sum("Forwarded message" in b for b in bodies) >= 30
    assert len({r["subject"] for r in triage.train}) >= 800


def test_triage_cli_writes_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ticket_triage.main(["--out", str(tmp_path), "--train-size", "60", "--validation-size", "12"]) == 0
    assert len(read_jsonl(tmp_path / ticket_triage.TRAIN_FILE)) == 60
    assert len(read_jsonl(tmp_path / ticket_triage.VALIDATION_FILE)) == 12
    assert "wrote 60 tickets" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# Brand voice
# --------------------------------------------------------------------------------------------

def test_voice_is_deterministic_and_large_enough(voice: brand_voice.VoiceDataset) -> None:
    assert len(voice.train) >= 500 and len(voice.validation) >= 50
    assert brand_voice.generate().train == voice.train
    assert brand_voice.generate(seed=1).train != voice.train
    messages = [normalize(r["message"]) for r in voice.train + voice.validation]
    assert len(messages) == len(set(messages))


def test_voice_replies_follow_the_style_guide(voice: brand_voice.VoiceDataset) -> None:
    forbidden = re.compile(r"\b(?:" + "|".join(map(re.escape, brand_voice.FORBIDDEN_WORDS)) + r")\b", re.IGNORECASE)
    for record in voice.train + voice.validation:
        reply = record["reply"]
        assert set(record) == {"id", "message", "reply"}
        assert re.match(brand_voice.GREETINGS, reply), reply[:40]
        assert reply.endswith(brand_voice.SIGN_OFF)
        assert not forbidden.search(reply), forbidden.search(reply)
        assert "!" not in reply
        assert 40 <= len(reply.split()) <= 120
        assert brand_voice.style_problems(reply) == []


def test_voice_validation_holds_no_near_copy_of_a_training_reply(voice: brand_voice.VoiceDataset) -> None:
    trained = [brand_voice._words(r["reply"]) for r in voice.train]
    assert not [r["id"] for r in voice.validation if brand_voice.is_near_copy(r["reply"], trained)]
    reply = voice.train[0]["reply"]
    assert brand_voice.is_near_copy(reply, trained)
    assert brand_voice.is_near_copy(reply.replace("Hello", "Dear", 1), trained)
    assert not brand_voice.is_near_copy("Hello,\n\nSomething else entirely.", trained)


def test_voice_replies_never_give_a_phone_number(voice: brand_voice.VoiceDataset) -> None:
    phone = re.compile(r"\b(?:phone|call us|telephone number|\d{3}[-. ]\d{3}[-. ]\d{4})\b", re.IGNORECASE)
    assert not [r["id"] for r in voice.train + voice.validation if phone.search(r["reply"])]
    assert any("telephone" in r["reply"] for r in voice.train)  # the contact topic says how to reach us


def test_voice_replies_use_the_name_only_when_given(voice: brand_voice.VoiceDataset) -> None:
    for record in voice.train:
        greeting = record["reply"].split("\n", 1)[0]
        if greeting != "Hello,":
            assert greeting.split()[1].rstrip(",") in record["message"]


def test_voice_replies_restate_the_facts(voice: brand_voice.VoiceDataset) -> None:
    order = re.compile(r"(?:AP-?|#)\d{6}")
    for record in voice.train:
        for number in order.findall(record["reply"]):
            assert number in record["message"], record["id"]
    with_order = [r for r in voice.train if order.search(r["message"])]
    assert sum(bool(order.search(r["reply"])) for r in with_order) / len(with_order) > 0.9


def test_style_checker_catches_violations() -> None:
    good = brand_voice.generate(train_size=1, validation_size=1).train[0]["reply"]
    assert brand_voice.style_problems(good) == []
    assert brand_voice.style_problems(good.replace("Warm regards", "Cheers"))
    assert brand_voice.style_problems("Hey Sam,\n\n" + good.split("\n\n", 1)[1])
    assert brand_voice.style_problems(good.replace(".", "!", 1))
    assert brand_voice.style_problems(good.replace(".", ", no worries.", 1))


def test_committed_voice_files_match_the_generator(tmp_path: Path) -> None:
    brand_voice.write(tmp_path)
    for name in (brand_voice.TRAIN_FILE, brand_voice.VALIDATION_FILE):
        assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes(), (
            f"{name} is stale: run `python -m adapters.recipes.brand_voice --out adapters/data`")
