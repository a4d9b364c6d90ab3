"""Style measures for brand-voice evaluation (`loragate eval --voice`).

Each reply to a customer message is scored with these measures (pure functions of the text);
per target they are averaged and compared with the base model (target minus base), because the
question is whether an adapter moved the model towards the brand's voice.

- greeting: the reply (leading whitespace stripped) starts with one of the brand's GREETINGS
  (one regex or a list; each matched at the start with `re.match`, as the brand wrote it, or
  taken as a plain prefix). The default greetings (Hi, Hello, Dear, ...) ignore case.
- sign-off: the brand's SIGN_OFF text (case and whitespace ignored) occurs in the reply's last
  300 characters; without a brand sign-off, a generic closing ("Best regards", "Kind regards",
  "Sincerely", "Cheers", "Thank you", ...) starts one of the last three lines.
- contractions per 100 words: n't, 're, 've, 'll, 'd, 'm, and 's after it/that/there/here/what/
  who/where/how/let/he/she (not possessives), per 100 words; lower is more formal.
- exclamation marks: count of "!" in the reply; lower is calmer.
- slang/forbidden words: occurrences of the brand's FORBIDDEN_WORDS plus a small slang list
  (gonna, wanna, lol, ...), whole words, case-insensitive.
- length: words (runs of letters/digits; `.`, `,`, `'` or `-` inside a run keep it one word:
  29.00, A-1234, can't).
- answers the question: share of the message's concrete facts restated in the reply. Facts are
  tokens containing a digit (numbers, amounts, dates, order ids such as INV-2024-00381; a leading
  #, $, EUR/GBP sign and trailing punctuation are dropped) and capitalised names not at the start
  of a sentence (consecutive capitalised words form one name: "Pro Plan"), minus common words
  (days, months, I, Hi, ...). A fact is restated when it occurs in the reply as a whole token
  (case-insensitive). Undefined (left out of the mean) for messages without facts.
- reference F1 (only with a reference `reply`): bag-of-words overlap F1 of lowercase word tokens
  between reply and reference (SQuAD-style).
- invented specifics: phone numbers, amounts of money, percentages, dates, order or reference ids,
  web and email addresses, and durations ("within 3 business days") in the reply that appear
  neither in the message nor in the brand's fact sheet (the recipe's FACT_SHEET: its stores,
  hours, care and policy texts), compared by letters, digits and $ % @ signs only, case ignored. A reply
  that makes up a phone number or a refund deadline is a promise the brand never made.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from service.observability.stats import mean

DEFAULT_GREETINGS = [r"(?i)(hi|hello|hey|dear|greetings)\b", r"(?i)good (morning|afternoon|evening)\b",
                     r"(?i)thanks? (you )?for (reaching|contacting|getting|writing)"]
GENERIC_SIGN_OFFS = re.compile(r"^\W*(best( regards| wishes)?|kind regards|warm regards|regards|sincerely|cheers|"
                               r"thanks|thank you|all the best|take care)\b", re.IGNORECASE)
DEFAULT_SLANG = ["gonna", "wanna", "gotta", "kinda", "sorta", "lol", "omg", "btw", "tbh", "idk", "dude", "yeah",
                 "yep", "nope", "ya", "y'all", "awesome", "super cool", "no worries", "lmk"]
COMMON_CAPITALISED = {
    "i", "i'm", "i've", "i'll", "i'd", "hi", "hello", "hey", "dear", "thanks", "thank", "please", "regards", "ok",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "january", "february", "march",
    "april", "may", "june", "july", "august", "september", "october", "november", "december", "today",
    "tomorrow", "yesterday", "mr", "mrs", "ms", "dr", "sir", "madam", "team", "support", "customer", "service",
}
WORD = re.compile(r"[A-Za-z0-9]+(?:[.,'-][A-Za-z0-9]+)*")  # 29.00, A-1234, can't: one word each
CONTRACTION = re.compile(r"\b(?:[A-Za-z]+(?:n't|'re|'ve|'ll|'d|'m)|(?:it|that|there|here|what|who|where|how|let|he|she)'s)\b",
                         re.IGNORECASE)
DIGIT_TOKEN = re.compile(r"[^\s]*\d[^\s]*")
NAME = re.compile(r"(?<![\w'])[A-Z][A-Za-z0-9]*(?:[-.][A-Za-z0-9]+)*(?:[ \t]+[A-Z][A-Za-z0-9]*(?:[-.][A-Za-z0-9]+)*)*")


# Specifics a reply must not make up (see the module docstring), most specific first.
SPECIFICS = re.compile("|".join((
    r"(?:https?://|www\.)[^\s)<>]+",  # web addresses
    r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+",  # email addresses
    r"\b[\w-]+(?:\.[\w-]+)*\.(?:com|net|org|io|co|uk|us|de|example)\b",  # bare domains
    r"(?<![\w-])(?:\+?\d{1,3}[\s.-]?)?\(?\d{3}\)?[\s.-]?\d{3}[\s.-]?\d{4}(?![\w-])",  # phone numbers
    r"[$\u20ac\u00a3]\s?\d[\d,]*(?:\.\d{1,2})?|\b\d[\d,]*(?:\.\d{1,2})?\s?(?:usd|eur|gbp|dollars?|euros?|pounds?)\b",
    r"\b\d+(?:\.\d+)?\s?%",  # percentages
    r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\s+\d{1,2}(?:st|nd|rd|th)?\b"
    r"|\b\d{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\b"
    r"|\b\d{1,2}[/.]\d{1,2}[/.]\d{2,4}\b",  # dates
    r"#\d{3,}|\b[A-Z]{1,6}[-#]?\d{4,}(?:-\d+)*\b",  # order and reference ids
    r"\b(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fourteen|fifteen|twenty|thirty|"
    r"forty|forty-five|sixty|ninety)[\s-]+(?:(?:business|working|calendar)[\s-]+)?"
    r"(?:days?|weeks?|months?|years?|hours?)\b",  # durations (deadlines, return windows)
)), re.IGNORECASE)


class BrandStyle(BaseModel):
    greetings: list[str]
    sign_off: str | None
    forbidden_words: list[str]
    source: str  # where the constants came from (shown in the report)
    fact_sheet: str = ""  # what the brand states about itself (specifics a reply may repeat)


class VoiceScores(BaseModel):
    """The measures of one reply."""

    greeting: bool
    sign_off: bool
    contractions_per_100_words: float
    exclamation_marks: int
    slang_words: int
    words: int
    facts: int
    facts_restated: int
    answer_share: float | None
    reference_f1: float | None
    invented: list[str] = []  # specifics in the reply found in neither the message nor the fact sheet


def load_brand_style() -> BrandStyle:
    """The brand's constants from adapters/recipes/brand_voice.py, each falling back to a default
    when the recipe (or that constant) is missing, so --voice works before the recipe exists."""
    try:
        from service.training.recipes import recipe_module

        module: Any = recipe_module("brand-voice")
        source = "adapters/recipes/brand_voice.py"
    except Exception as exc:  # noqa: BLE001 - any import problem means "use the defaults"
        module, source = None, f"defaults (brand-voice recipe unavailable: {type(exc).__name__})"
    greetings = getattr(module, "GREETINGS", None)
    if isinstance(greetings, (str, re.Pattern)):
        greetings = [greetings]  # one regex for every greeting form
    sign_off = getattr(module, "SIGN_OFF", None)
    forbidden = getattr(module, "FORBIDDEN_WORDS", None)
    fact_sheet = getattr(module, "FACT_SHEET", "")
    return BrandStyle(
        greetings=[g.pattern if isinstance(g, re.Pattern) else str(g) for g in greetings] if greetings else DEFAULT_GREETINGS,
        sign_off=(str(sign_off).strip() or None) if sign_off else None,
        forbidden_words=[str(w) for w in forbidden] if forbidden else [],
        source=source, fact_sheet=str(fact_sheet or ""),
    )


def has_greeting(reply: str, greetings: Sequence[str]) -> bool:
    text = reply.lstrip()
    for greeting in greetings:
        try:
            if re.match(greeting, text):
                return True
        except re.error:
            pass  # not a valid regex: a plain prefix
        if text.startswith(greeting):
            return True
    return False


def has_sign_off(reply: str, sign_off: str | None) -> bool:
    if sign_off:
        return _squash(sign_off) in _squash(reply[-300:])
    lines = [line for line in reply.strip().splitlines() if line.strip()]
    return any(GENERIC_SIGN_OFFS.match(line) for line in lines[-3:])


def words(text: str) -> list[str]:
    return WORD.findall(text.replace("\u2019", "'"))


def contractions_per_100_words(text: str) -> float:
    text = text.replace("\u2019", "'")
    count = len(words(text))
    return 100 * len(CONTRACTION.findall(text)) / count if count else 0.0


def slang_count(text: str, forbidden: Sequence[str]) -> int:
    text = text.replace("\u2019", "'")
    terms = {term.lower() for term in [*forbidden, *DEFAULT_SLANG] if term.strip()}
    return sum(len(re.findall(rf"(?<![\w']){re.escape(term)}(?![\w'])", text, re.IGNORECASE)) for term in terms)


def extract_facts(message: str) -> list[str]:
    """Concrete facts of a message (see the module docstring), lowercased and de-duplicated."""
    facts: list[str] = []
    for token in DIGIT_TOKEN.findall(message):
        fact = token.strip(".,;:!?()[]{}\"'").lstrip("#$\u20ac\u00a3")
        if any(ch.isdigit() for ch in fact):
            facts.append(fact)
    for match in NAME.finditer(message):
        if _sentence_start(message, match.start()):
            # Drop the first word (capitalised by grammar); keep the rest of a multi-word name.
            rest = match.group().split(None, 1)
            name = rest[1] if len(rest) == 2 else ""
        else:
            name = match.group()
        name = " ".join(w for w in name.split() if w.lower() not in COMMON_CAPITALISED and not any(c.isdigit() for c in w))
        if name:
            facts.append(name)
    return list(dict.fromkeys(fact.lower() for fact in facts))


def restated(fact: str, reply: str) -> bool:
    pattern = r"(?<![\w])" + r"\s+".join(re.escape(part) for part in fact.split()) + r"(?![\w])"
    return re.search(pattern, reply, re.IGNORECASE) is not None


def invented_specifics(reply: str, message: str, fact_sheet: str = "") -> list[str]:
    """The reply's specifics (see the module docstring) that neither the message nor the fact sheet
    states, in order, de-duplicated."""
    known = _comparable(message) + "\n" + _comparable(fact_sheet)
    found = [match.group().strip().rstrip(".,;:!?)") for match in SPECIFICS.finditer(reply)]
    return list(dict.fromkeys(s for s in found if _comparable(s) not in known))


def _comparable(text: str) -> str:
    """Letters, digits and the signs that change a specific's meaning ($25 is not 25%); a web
    address without its scheme and `www.`."""
    text = re.sub(r"(?i)\b(?:https?://)?www\.|https?://", "", text.lower())
    return re.sub(r"[^0-9a-z$%@\u20ac\u00a3]+", "", text)


def token_f1(reply: str, reference: str) -> float:
    pred, ref = Counter(w.lower() for w in words(reply)), Counter(w.lower() for w in words(reference))
    common = sum((pred & ref).values())
    if not pred and not ref:
        return 1.0
    if common == 0:
        return 0.0
    precision, recall = common / sum(pred.values()), common / sum(ref.values())
    return 2 * precision * recall / (precision + recall)


def score_reply(message: str, reply: str, style: BrandStyle, reference: str | None = None) -> VoiceScores:
    facts = extract_facts(message)
    hits = sum(restated(fact, reply) for fact in facts)
    return VoiceScores(
        greeting=has_greeting(reply, style.greetings),
        sign_off=has_sign_off(reply, style.sign_off),
        contractions_per_100_words=contractions_per_100_words(reply),
        exclamation_marks=reply.count("!"),
        slang_words=slang_count(reply, style.forbidden_words),
        words=len(words(reply)),
        facts=len(facts),
        facts_restated=hits,
        answer_share=hits / len(facts) if facts else None,
        reference_f1=token_f1(reply, reference) if reference else None,
        invented=invented_specifics(reply, message, style.fact_sheet),
    )


# Aggregates reported per target (name -> how it is computed from VoiceScores).
AGGREGATES = {
    "greeting_rate": "share of replies with a brand greeting",
    "sign_off_rate": "share of replies with the brand sign-off",
    "contractions_per_100_words": "mean contractions per 100 words",
    "exclamation_marks": "mean exclamation marks per reply",
    "slang_words": "mean slang/forbidden words per reply",
    "words": "mean reply length in words",
    "answer_share": "mean share of the message's facts restated (messages with facts)",
    "reference_f1": "mean token-overlap F1 against the reference reply (examples with one)",
    "invented_rate": "share of replies with a specific found in neither the message nor the brand's fact sheet",
}


def aggregate(scores: Sequence[VoiceScores]) -> dict[str, float | None]:
    return {
        "greeting_rate": mean([float(s.greeting) for s in scores]),
        "sign_off_rate": mean([float(s.sign_off) for s in scores]),
        "contractions_per_100_words": mean([s.contractions_per_100_words for s in scores]),
        "exclamation_marks": mean([float(s.exclamation_marks) for s in scores]),
        "slang_words": mean([float(s.slang_words) for s in scores]),
        "words": mean([float(s.words) for s in scores]),
        "answer_share": mean([s.answer_share for s in scores if s.answer_share is not None]),
        "reference_f1": mean([s.reference_f1 for s in scores if s.reference_f1 is not None]),
        "invented_rate": mean([float(bool(s.invented)) for s in scores]),
    }


def deltas(target: dict[str, float | None], base: dict[str, float | None]) -> dict[str, float | None]:
    """Target minus base for each aggregate (None where either is undefined)."""
    return {key: None if target.get(key) is None or base.get(key) is None else target[key] - base[key] for key in AGGREGATES}


def _squash(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _sentence_start(text: str, index: int) -> bool:
    before = text[:index].rstrip(" \t\"'(")
    return not before or before[-1] in ".!?\n:" or before.endswith("\n")
