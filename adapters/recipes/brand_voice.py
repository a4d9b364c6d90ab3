"""Seeded generator of customer messages and replies in the Alder & Pine Outfitters brand voice.

Alder & Pine Outfitters is an (invented) outdoor clothing and gear retailer with an online shop and
three stores. The brand-voice adapter learns to answer a customer's actual question in this voice;
the replies restate the customer's facts (order number, item, size) and use the store's real
policies below, so the adapter learns one consistent set of answers instead of inventing tracking
numbers or delivery dates it cannot know.

Style guide (also `STYLE_GUIDE`, used by evaluation together with `GREETINGS`, `SIGN_OFF` and
`FORBIDDEN_WORDS`):
- Greeting: "Dear <first name>," or "Hello <first name>," when the customer gave a name, else "Hello,".
- Warm and formal: thank or apologise once, sincerely; no slang, no emojis, no exclamation marks.
- Short paragraphs (one to three sentences); 40 to 120 words in all.
- Answer the customer's actual question first and concretely, restating their order number, item
  and size; then give the one next step and how to reach us.
- End with the sign-off "Warm regards,\\nThe Alder & Pine Outfitters Team".
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.recipes.brand_voice_phrases import (
    CUSTOMER_CLOSINGS,
    CUSTOMER_GREETINGS,
    PRODUCTS,
    DERIVED,
    FACT_SLOTS,
    SIZED_KINDS,
    SLOT_MAKERS,
    TOPICS,
    Topic,
)
from adapters.recipes.common import DATA_DIR, TABLES_DIR, Slots, fields, fill, lower_words, normalize, write_jsonl

BRAND = "Alder & Pine Outfitters"
SIGN_OFF = "Warm regards,\nThe Alder & Pine Outfitters Team"
# A reply starts with one of these greetings (the generated replies put it on its own line).
GREETINGS = r"^(?:(?:Dear|Hello) [^\W\d_][\w'-]*|Hello),"
GREETING_FORMS = ("Dear {name},", "Hello {name},", "Hello,")
FORBIDDEN_WORDS = (
    "hey", "gonna", "wanna", "lol", "awesome", "no worries", "cheers", "yeah", "yep", "nope", "cool", "guys",
    "folks", "btw", "omg", "asap", "super", "stoked", "dude", "kinda", "sorta", "totally", "thx", "pls", "lmk",
    "no problem", "my bad", "ya",
)
STYLE_GUIDE = (
    f"You write customer-service replies for {BRAND}, an outdoor clothing and gear retailer. "
    "Start with 'Dear <first name>,' or 'Hello <first name>,' when the customer's name is known, otherwise 'Hello,'. "
    "Be warm and formal: no slang, no emojis, no exclamation marks. Use short paragraphs and 40 to 120 words. "
    "Answer the customer's actual question first and concretely, restating their order number, item and size, "
    f"then give one clear next step. End with:\n{SIGN_OFF}"
)
STYLE: dict[str, Any] = {
    "brand": BRAND, "style_guide": STYLE_GUIDE, "greetings": GREETINGS, "greeting_forms": GREETING_FORMS,
    "sign_off": SIGN_OFF, "forbidden_words": FORBIDDEN_WORDS, "min_words": 40, "max_words": 120,
}
TRAIN_FILE, VALIDATION_FILE = "voice_train.jsonl", "voice_validation.jsonl"
# What the brand states about itself (site, stores, hours, care, policies): a reply may repeat these
# specifics; any other phone number, amount, date, id, address or duration is invented
# (`loragate eval --voice` counts them).
FACT_SHEET = "\n".join((TABLES_DIR / name).read_text(encoding="utf-8")
                        for name in ("brand_voice.yaml", "brand_voice_topics.yaml"))

_FORBIDDEN = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in FORBIDDEN_WORDS) + r")\b", re.IGNORECASE)
_EMOJI = re.compile("[\U0001F300-\U0001FAFF\u2600-\u27BF]")


@dataclass
class VoiceDataset:
    train: list[dict[str, str]] = field(default_factory=list)
    validation: list[dict[str, str]] = field(default_factory=list)


def style_problems(reply: str) -> list[str]:
    """What breaks the style guide in `reply` (empty when it complies); shared with evaluation."""
    problems = []
    if not re.match(GREETINGS, reply):
        problems.append("missing greeting")
    if not reply.rstrip().endswith(SIGN_OFF):
        problems.append("missing sign-off")
    if found := _FORBIDDEN.findall(reply):
        problems.append(f"forbidden words: {sorted({w.lower() for w in found})}")
    if _EMOJI.search(reply):
        problems.append("emoji")
    if "!" in reply:
        problems.append("exclamation mark")
    words = len(reply.split())
    if not STYLE["min_words"] <= words <= STYLE["max_words"]:
        problems.append(f"{words} words")
    return problems


# A validation reply sharing this much of its words with a training reply is a near-copy: scoring
# it would measure recall of the training set, not the voice.
NEAR_COPY_OVERLAP = 0.9


def generate(seed: int = 0, train_size: int = 600, validation_size: int = 100) -> VoiceDataset:
    """Message/reply pairs; topics in rotation, no message shared between the splits and no
    validation reply a near-copy of a training reply."""
    rng = random.Random(seed)
    seen: set[str] = set()
    train = _draw(rng, train_size, seen, "voice-train")
    trained_replies = [_words(record["reply"]) for record in train]
    return VoiceDataset(train, _draw(rng, validation_size, seen, "voice-val", trained_replies))


def _words(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[\w'-]+", text.lower()))


def is_near_copy(reply: str, others: Sequence[frozenset[str]]) -> bool:
    """Whether `reply` shares at least NEAR_COPY_OVERLAP of its words (Jaccard) with one of `others`."""
    words = _words(reply)
    return any(len(words & other) >= NEAR_COPY_OVERLAP * len(words | other) for other in others)


def _draw(rng: random.Random, size: int, seen: set[str], prefix: str,
          avoid_replies: Sequence[frozenset[str]] = ()) -> list[dict[str, str]]:
    records: list[dict[str, str]] = []
    attempts = 0
    while len(records) < size:
        attempts += 1
        if attempts > size * 200:
            raise RuntimeError(f"could not draw {size} distinct messages")
        message, reply = make_pair(rng, TOPICS[len(records) % len(TOPICS)])
        if normalize(message) not in seen and not style_problems(reply) and not is_near_copy(reply, avoid_replies):
            seen.add(normalize(message))
            records.append({"message": message, "reply": reply})
    rng.shuffle(records)
    return [{"id": f"{prefix}-{i:04d}", **record} for i, record in enumerate(records)]


def make_pair(rng: random.Random, topic: Topic) -> tuple[str, str]:
    """One customer message about `topic` and its brand-voice reply."""
    slots = Slots(rng, SLOT_MAKERS)
    sized = any("{size" in m for m in topic.messages)  # sizes only for clothing and footwear
    slots["product"], slots["kind"] = rng.choice([p for p in PRODUCTS if not sized or p[1] in SIZED_KINDS])
    name_known = rng.random() < 0.6
    parts = []
    if rng.random() < 0.55:
        parts.append(fill(rng.choice(CUSTOMER_GREETINGS), slots))
    body = fill(rng.choice(topic.messages), slots)
    if rng.random() < 0.35 and topic.extras:
        body += " " + fill(rng.choice(topic.extras), slots)
    if rng.random() < 0.2:
        body = lower_words(body)
    parts.append(body)
    if name_known:
        parts.append(fill(rng.choice(CUSTOMER_CLOSINGS), slots))
    message = "\n\n".join(parts) if rng.random() < 0.6 else " ".join(parts).replace("\n\n", " ")

    greeting = (rng.choice(GREETING_FORMS[:2]).format(name=slots["first"]) if name_known else "Hello,")
    pick = lambda options: fill(rng.choice(_grounded(options, slots.used)), slots)  # noqa: E731
    paragraphs = [pick(topic.openings) + " " + pick(topic.answers), pick(topic.next_steps)]
    if rng.random() < 0.6:
        paragraphs.append(fill(rng.choice(_CLOSING_LINES), slots))
    reply = "\n\n".join([greeting, *paragraphs, SIGN_OFF])
    if len(reply.split()) > STYLE["max_words"] and len(paragraphs) == 3:
        reply = "\n\n".join([greeting, *paragraphs[:2], SIGN_OFF])
    return message, reply


def _grounded(options: Sequence[str], used: set[str]) -> list[str]:
    """Reply templates that restate only facts the message gave, and as many of them as possible."""

    def ok(template: str) -> bool:
        needed = {DERIVED.get(name, name) for name in fields(template)} & FACT_SLOTS
        return needed <= used

    grounded = [t for t in options if ok(t)]
    if not grounded:
        raise ValueError(f"no reply template is grounded in the message: {options[0]!r}")
    # Prefer the templates that restate the most of what the customer told us.
    most = max(len(fields(t) & FACT_SLOTS) for t in grounded)
    return [t for t in grounded if len(fields(t) & FACT_SLOTS) == most]


_CLOSING_LINES = (
    "If there is anything else we can help with, please simply reply to this email.",
    f"Thank you for choosing {BRAND}.",
    "We are always glad to help, and we hope to see you on the trail soon.",
    "Thank you for your patience and for shopping with us.",
)


def write(out_dir: Path, seed: int = 0, train_size: int = 600, validation_size: int = 100) -> dict[str, int]:
    """Generate and write the train and validation files; returns {file name: record count}."""
    data = generate(seed, train_size, validation_size)
    return {TRAIN_FILE: write_jsonl(out_dir / TRAIN_FILE, data.train),
            VALIDATION_FILE: write_jsonl(out_dir / VALIDATION_FILE, data.validation)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-size", type=int, default=600)
    parser.add_argument("--validation-size", type=int, default=100)
    args = parser.parse_args(argv)
    for name, count in write(args.out, args.seed, args.train_size, args.validation_size).items():
        print(f"wrote {count} message/reply pairs to {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
