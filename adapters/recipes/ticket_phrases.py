"""Slot values for the ticket generator: concrete facts a ticket states, and how each is made.

The value pools live in `tables/ticket_phrases.yaml`; the makers here compose the rest (order numbers
in many shop formats, amounts in several currencies, carrier-specific tracking numbers, emails) so the
adapter learns to copy facts from the ticket into the summary instead of memorising a few values.
Style pieces (greetings, tones, signatures, quoted replies) are in `ticket_style` and deliberately
category-neutral: only the situation carries the label.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from adapters.recipes.common import Slots, load_table

P: dict[str, Any] = load_table("ticket_phrases.yaml")
# Pools the makers below use by name (the rest are picked as `_pick(P["name"])`).
FIRST: tuple[str, ...] = P["first"]
LAST: tuple[str, ...] = P["last"]
MALE_FIRST: tuple[str, ...] = P["male_first"]
EMAIL_DOMAINS: tuple[str, ...] = P["email_domains"]
COMPANIES: tuple[str, ...] = P["companies"]
STREETS: tuple[str, ...] = P["streets"]
MONTHS: tuple[str, ...] = P["months"]
MONTH_ABBR = [m[:3] for m in MONTHS]
PRICES: tuple[float, ...] = P["prices"]
SIZES: tuple[str, ...] = P["sizes"]
# Groups of similar products: a recommendation compares two from the same group.
ITEM_GROUPS: tuple[tuple[str, ...], ...] = P["item_groups"]
ITEMS = tuple(item for group in ITEM_GROUPS for item in group)


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _letters(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(n))


def _money(rng: random.Random, s: Slots, value: float) -> str:
    style = s["_currency"]
    text = f"{value:,.2f}" if value < 1000 else f"{value:,.0f}"
    if style == "usd":
        return f"${text}"
    if style == "usd_code":
        return f"{text} USD"
    if style == "eur":
        return f"€{text}"
    if style == "eur_suffix":
        return text.replace(",", " ").replace(".", ",") + " EUR"
    if style == "gbp":
        return f"£{text}"
    return f"{text} CAD"


def _order(rng: random.Random, s: Slots) -> str:
    return rng.choice([
        lambda: "#" + _digits(rng, 6),
        lambda: "A-" + _digits(rng, 6),
        lambda: "ORD-" + _digits(rng, 5),
        lambda: f"{_digits(rng, 2)}-{_digits(rng, 4)}-{_letters(rng, 2)}",
        lambda: "W" + _digits(rng, 8),
        lambda: "SO" + _digits(rng, 6),
        lambda: f"#{_digits(rng, 5)}-{_digits(rng, 2)}",
        lambda: _digits(rng, 7),
    ])()


def _date(rng: random.Random, s: Slots) -> str:
    month, day = rng.randrange(12), rng.randint(1, 28)
    return rng.choice([
        f"{MONTHS[month]} {day}", f"{day} {MONTHS[month]}", f"{month + 1:02d}/{day:02d}",
        f"{day:02d}.{month + 1:02d}.", f"{MONTH_ABBR[month]} {day}", f"the {day}{_ordinal(day)}",
    ])


def _ordinal(day: int) -> str:
    return "th" if 11 <= day <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def _tracking(rng: random.Random, s: Slots) -> str:
    carrier = s["carrier"]
    if carrier == "UPS":
        return "1Z" + _letters(rng, 3) + _digits(rng, 13)
    if carrier in ("Royal Mail", "Canada Post", "Australia Post", "Colissimo"):
        return _letters(rng, 2) + _digits(rng, 9) + rng.choice(["GB", "CA", "AU", "FR"])
    if carrier == "USPS":
        return "9400 " + " ".join(_digits(rng, 4) for _ in range(4)) + " " + _digits(rng, 2)
    if carrier == "DHL":
        return "JD01" + _digits(rng, 16)
    return _digits(rng, rng.choice([12, 14]))


def _person_email(first: str, last: str, rng: random.Random) -> str:
    local = rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}{_digits(rng, 2)}", f"{last}.{first}"])
    return (local.lower().replace("'", "").replace(" ", "") + "@" + rng.choice(EMAIL_DOMAINS)
            .replace("í", "i")).translate(str.maketrans("áéíóúñçãö", "aeiouncao"))


def _company_email(rng: random.Random, s: Slots) -> str:
    domain = s["company"].lower().split()[0].replace("&", "") + ".com"
    return f"{rng.choice(FIRST).lower()}@{domain}".translate(str.maketrans("áéíóúñçãö", "aeiouncao"))


def _pick(pool: tuple[str, ...] | list[str]) -> Callable[[random.Random, Slots], str]:
    return lambda rng, s: rng.choice(pool)


def _other(key: str, pool: tuple[str, ...]) -> Callable[[random.Random, Slots], str]:
    """A value from `pool` different from slot `key` (a second item, a different size)."""
    return lambda rng, s: rng.choice([v for v in pool if v != s[key]])


SLOT_MAKERS: dict[str, Callable[[random.Random, Slots], str]] = {
    "_currency": lambda rng, s: rng.choice(["usd", "usd", "usd_code", "eur", "eur", "eur_suffix", "gbp", "gbp", "cad"]),
    "first": _pick(FIRST),
    "last": _pick(LAST),
    "full": lambda rng, s: f"{s['first']} {s['last']}",
    "new_name": lambda rng, s: f"{s['first']} {rng.choice([n for n in LAST if n != s['last']])}",
    "male_full": lambda rng, s: f"{rng.choice(MALE_FIRST)} {s['last']}",
    "charity_event": _pick(P["charity_events"]),
    "other_full": lambda rng, s: f"{rng.choice([n for n in FIRST if n != s['first']])} {rng.choice(LAST)}",
    "email": lambda rng, s: _person_email(s["first"], s["last"], rng),
    "new_email": lambda rng, s: _person_email(s["first"], s["last"], rng),
    "email2": _company_email,
    "username": lambda rng, s: (s["first"][:4] + rng.choice(["_", ".", ""]) + _digits(rng, rng.choice([2, 3]))).lower(),
    "company": _pick(COMPANIES),
    "title": _pick(P["titles"]),
    "phone_number": lambda rng, s: rng.choice([f"+44 7700 {_digits(rng, 6)}", f"+49 151 {_digits(rng, 8)}",
                                               f"+1 (512) 555-{_digits(rng, 4)}", f"+33 6 {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)}",
                                               f"+31 6 {_digits(rng, 8)}", f"0{_digits(rng, 3)} {_digits(rng, 3)} {_digits(rng, 4)}"]),
    "city": _pick(P["cities"]),
    "address": lambda rng, s: rng.choice([f"{rng.randint(2, 190)} {rng.choice(STREETS)}, {s['city']}",
                                          f"{rng.choice(STREETS)} {rng.randint(2, 90)}, {s['city']}",
                                          f"Flat {rng.randint(1, 30)}, {rng.randint(2, 120)} {rng.choice(STREETS)}, {s['city']}"]),
    "country": _pick(P["countries"]),
    "plan": _pick(P["plans"]),
    "amount": lambda rng, s: _money(rng, s, rng.choice(PRICES)),
    "big_amount": lambda rng, s: _money(rng, s, rng.choice([4800, 7200, 12500, 18000, 24000, 36000, 48000])),
    "date": _date,
    "month": _pick(MONTHS),
    "weekday": _pick(P["weekdays"]),
    "since": _pick(P["since"]),
    "when_past": _pick(P["when_past"]),
    "time": lambda rng, s: rng.choice([f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}", f"{rng.randint(1, 11)}:{rng.randint(0, 59):02d} {rng.choice(['am', 'pm'])}"]),
    "invoice": lambda rng, s: rng.choice(["INV-" + _digits(rng, 4), f"INV-{rng.choice(['2024', '2025'])}-{_digits(rng, 5)}",
                                          f"{rng.choice(['2024', '2025'])}-{_digits(rng, 4)}", "F" + _digits(rng, 6), "#" + _digits(rng, 5)]),
    "last4": lambda rng, s: _digits(rng, 4),
    "case": lambda rng, s: rng.choice(["CS-" + _digits(rng, 5), "#" + _digits(rng, 6), "TKT-" + _digits(rng, 4)]),
    "days": lambda rng, s: str(rng.randint(4, 21)),
    "days_short": lambda rng, s: str(rng.randint(2, 5)),
    "days_long": lambda rng, s: str(rng.randint(35, 90)),
    "hours": lambda rng, s: str(rng.randint(2, 30)),
    "months": lambda rng, s: str(rng.randint(3, 22)),
    "years": lambda rng, s: str(rng.randint(2, 9)),
    "count": lambda rng, s: str(rng.randint(3, 9)),
    "got": lambda rng, s: str(rng.randint(1, int(s["count"]) - 1)),
    "audience": _pick(P["audiences"]),
    "rows": lambda rng, s: str(rng.randint(150, 9000)),
    "row": lambda rng, s: str(rng.randint(2, int(s["rows"]))),
    "units": lambda rng, s: str(rng.choice([25, 40, 60, 120, 200, 350, 500])),
    "seats": lambda rng, s: str(rng.randint(3, 120)),
    "seats_billed": lambda rng, s: str(int(s["seats"]) + rng.randint(5, 80)),
    "km": lambda rng, s: str(rng.randint(6, 40)),
    "percent": lambda rng, s: str(rng.randint(3, 40)),
    "seconds": lambda rng, s: str(rng.randint(8, 45)),
    "rpm": lambda rng, s: str(rng.choice([40, 60, 90, 120, 200, 300])),
    "vat": lambda rng, s: rng.choice(["DE" + _digits(rng, 9), "FR" + _digits(rng, 11), "NL" + _digits(rng, 9) + "B01",
                                      "GB" + _digits(rng, 9), "IE" + _digits(rng, 7) + "V", "ESB" + _digits(rng, 8)]),
    "order": _order,
    "promo": _pick(P["promos"]),
    "descriptor": _pick(P["descriptors"]),
    "bankref": lambda rng, s: rng.choice(["TRX", "REF", "BT"]) + _digits(rng, 8),
    "giftcard": lambda rng, s: f"GC-{_digits(rng, 4)}-{_digits(rng, 4)}",
    "contract": lambda rng, s: f"OF-{rng.choice(['2024', '2025'])}-{_digits(rng, 3)}",
    "app": _pick(P["apps"]),
    "feature": _pick(P["features"]),
    "version": lambda rng, s: f"{rng.randint(2, 9)}.{rng.randint(0, 24)}.{rng.randint(0, 9)}",
    "phone": _pick(P["phones"]),
    "os": _pick(P["oses"]),
    "browser": _pick(P["browsers"]),
    "error": _pick(P["errors"]),
    "http_error": _pick(P["http_errors"]),
    "error_pay": _pick(P["payment_errors"]),
    "request_id": lambda rng, s: "req_" + "".join(rng.choice("0123456789abcdef") for _ in range(10)),
    "integration": _pick(P["integrations"]),
    "url": lambda rng, s: f"https://hooks.{s['company'].lower().split()[0].replace('&', '')}.com/{rng.choice(['events', 'webhooks/in', 'api/hook'])}",
    "device": _pick(P["devices"]),
    "router": _pick(P["routers"]),
    "filesize": _pick(P["filesizes"]),
    "page": _pick(P["pages"]),
    "language": _pick(P["languages"]),
    "wrong_word": _pick(P["wrong_words"]),
    "domain": _pick(P["domains"]),
    "vuln": _pick(P["vulns"]),
    "records": _pick(P["records"]),
    "device_code": _pick(P["device_codes"]),
    "report": _pick(P["reports"]),
    "idp": _pick(P["idps"]),
    "sso_error": _pick(P["sso_errors"]),
    "key_prefix": lambda rng, s: rng.choice(["sk_live_", "lg_prod_", "api_"]) + _digits(rng, 4),
    "workspace": _pick(P["workspaces"]),
    "item": _pick(ITEMS),
    "item2": lambda rng, s: rng.choice([i for g in ITEM_GROUPS if s["item"] in g for i in g if i != s["item"]]),
    "wrong_item": lambda rng, s: rng.choice(["a " + i for i in ITEMS if i != s["item"] and i[0] not in "aeiou"]),
    "garment": _pick(P["garments"]),
    "size": _pick(SIZES),
    "size2": _other("size", SIZES),
    "points": lambda rng, s: str(rng.choice([120, 350, 800, 1250, 2400, 5000])),
    "ad_place": _pick(P["ad_places"]),
    "ad_claim": _pick(P["ad_claims"]),
    "sync_object": _pick(P["sync_objects"]),
    "colour": _pick(P["colours"]),
    "teen_age": lambda rng, s: str(rng.randint(13, 17)),
    "furniture": _pick(P["furniture"]),
    "defect": _pick(P["defects"]),
    "food_box": _pick(P["food_boxes"]),
    "sub_box": _pick(P["sub_boxes"]),
    "carrier": _pick(P["carriers"]),
    "tracking": _tracking,
    "tracking_status": _pick(P["tracking_statuses"]),
    "wish": _pick(P["wishes"]),
    "agent": _pick(P["agents"]),
    "topic": _pick(P["topics"]),
    "outlet": _pick(P["outlets"]),
    "role": _pick(P["roles"]),
    "product_line": _pick(P["product_lines"]),
    "spec": _pick(P["specs"]),
    "howto": _pick(P["howtos"]),
    "compliance_doc": _pick(P["compliance"]),
    "event": _pick(P["events"]),
    "deadline": _pick(P["deadlines"]),
    "support_domain": _pick(P["support_domains"]),
    "api_field": _pick(P["api_fields"]),
    "hazard_item": _pick(P["hazard_items"]),
    "hazard": _pick(P["hazards"]),
    "copied": _pick(P["copied_content"]),
}
