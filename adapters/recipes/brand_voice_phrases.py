"""The brand-voice generator's store, topics and slots: the data in `tables/brand_voice*.yaml`, typed.

Every reply part is written in the brand voice (see `brand_voice`); customer messages are not, on
purpose: customers write casually, with slang and exclamation marks, and the reply must not copy it.
The policies are stated once, in the tables, so every reply that mentions one gives the same answer.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from adapters.recipes.common import Slots, load_table
from adapters.recipes.ticket_phrases import FIRST, LAST

STORE: dict[str, Any] = load_table("brand_voice.yaml")
SITE: str = STORE["site"]
# (product name, kind); the kind selects the care, fit and specification answers.
PRODUCTS: list[tuple[str, str]] = [(product["name"], product["kind"]) for product in STORE["products"]]
CARE: dict[str, str] = STORE["care"]
FIT: dict[str, str] = STORE["fit"]
SPECS: dict[str, str] = STORE["specs"]
STORES: dict[str, str] = STORE["stores"]
STORE_HOURS: str = STORE["store_hours"]
CUSTOMER_GREETINGS: tuple[str, ...] = STORE["customer_greetings"]
CUSTOMER_CLOSINGS: tuple[str, ...] = STORE["customer_closings"]
SIZES: tuple[str, ...] = STORE["sizes"]
SHOE_SIZES: tuple[str, ...] = STORE["shoe_sizes"]
SIZED_KINDS: frozenset[str] = frozenset(STORE["sized_kinds"])


@dataclass(frozen=True)
class Topic:
    key: str
    messages: tuple[str, ...]
    extras: tuple[str, ...]
    openings: tuple[str, ...]
    answers: tuple[str, ...]
    next_steps: tuple[str, ...]


# A record with a missing or unknown field fails here (the dataclass's own check).
TOPICS: list[Topic] = [Topic(**record) for record in load_table("brand_voice_topics.yaml")]


def _pick(pool: tuple[str, ...] | list[str]) -> Callable[[random.Random, Slots], str]:
    return lambda rng, s: rng.choice(pool)


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


# Reply slots that restate a customer fact; a reply template may use them only if the message did.
FACT_SLOTS = {"order", "product", "size", "size2", "date", "days", "months", "city", "country", "giftcard", "promo",
              "points", "colour"}
DERIVED = {"care": "product", "fit": "product", "spec": "product", "store": "city", "hours": "city"}


def _sizes(s: Slots) -> tuple[str, ...]:
    return SHOE_SIZES if s["kind"] in ("boots", "shoes") else SIZES


SLOT_MAKERS: dict[str, Callable[[random.Random, Slots], str]] = {
    "first": _pick(FIRST),
    "last": _pick(LAST),
    "order": lambda rng, s: rng.choice(["AP-", "AP", "#"]) + _digits(rng, 6),
    "size": lambda rng, s: rng.choice(_sizes(s)[:-1]),
    "size2": lambda rng, s: _sizes(s)[_sizes(s).index(s["size"]) + 1],  # the next size up
    "date": lambda rng, s: f"{rng.choice(STORE['order_months'])} {rng.randint(1, 28)}",
    "days": _pick(STORE["day_counts"]),
    "months": lambda rng, s: str(rng.randint(4, 20)),
    "city": _pick(list(STORES)),
    "store": lambda rng, s: STORES[s["city"]],
    "hours": lambda rng, s: STORE_HOURS,
    "country": _pick(STORE["countries"]),
    "giftcard": lambda rng, s: f"GC-{_digits(rng, 4)}-{_digits(rng, 4)}",
    "promo": _pick(STORE["promos"]),
    "points": lambda rng, s: str(rng.choice([120, 180, 240, 350, 410, 600])),
    "colour": _pick(STORE["colours"]),
    "care": lambda rng, s: CARE[s["kind"]],
    "fit": lambda rng, s: FIT[s["kind"]],
    "spec": lambda rng, s: SPECS[s["kind"]],
    "site": lambda rng, s: SITE,
}
