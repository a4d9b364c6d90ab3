"""Every evaluation metric on small examples whose values are worked out by hand in the comments."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from service.evaluation import metrics, voice
from service.evaluation.results import Outcome, summarize_triage

LABELS = ["billing", "technical", "account", "shipping"]
# Category example used by several tests: 4 tickets, one with no valid output (None).
TRUE_C = ["billing", "billing", "technical", "account"]
PRED_C = ["billing", "technical", "technical", None]
# Priority example: 6 tickets, 3 of them urgent.
TRUE_P = ["low", "medium", "high", "urgent", "urgent", "urgent"]
PRED_P = ["medium", "medium", "low", "urgent", "high", None]


def test_accuracy_counts_invalid_as_wrong() -> None:
    # billing ok, billing->technical wrong, technical ok, account->None wrong: 2/4.
    assert metrics.accuracy(TRUE_C, PRED_C) == 0.5
    assert metrics.accuracy([], []) is None
    with pytest.raises(ValueError):
        metrics.accuracy(["a"], [])


def test_confusion_matrix_rows_true_columns_predicted_plus_invalid() -> None:
    assert metrics.confusion_matrix(TRUE_C, PRED_C, LABELS) == [
        # billing technical account shipping (invalid)
        [1, 1, 0, 0, 0],  # billing: one right, one called technical
        [0, 1, 0, 0, 0],  # technical
        [0, 0, 0, 0, 1],  # account: no valid output
        [0, 0, 0, 0, 0],  # shipping: not in the data
    ]


def test_macro_f1_worked_example() -> None:
    # F1 = 2tp / (2tp + fp + fn), one-vs-rest:
    #   billing:   tp=1 fp=0 fn=1 -> 2/3
    #   technical: tp=1 fp=1 fn=0 -> 2/3
    #   account:   tp=0 fp=0 fn=1 -> 0     (the None prediction is a false negative only)
    #   shipping:  nothing true or predicted -> undefined, left out of the mean
    # macro-F1 = (2/3 + 2/3 + 0) / 3 = 4/9
    per_class = metrics.per_class_f1(TRUE_C, PRED_C, LABELS)
    assert per_class == {"billing": pytest.approx(2 / 3), "technical": pytest.approx(2 / 3), "account": 0.0,
                         "shipping": None}
    assert metrics.macro_f1(TRUE_C, PRED_C, LABELS) == pytest.approx(4 / 9)
    assert metrics.macro_f1(["billing"], ["billing"], LABELS) == 1.0
    assert metrics.macro_f1([], [], LABELS) is None


def test_macro_f1_weighs_rare_classes_equally() -> None:
    # 9 billing right, the 1 account ticket called billing:
    #   billing tp=9 fp=1 fn=0 -> 18/19; account tp=0 fp=0 fn=1 -> 0; macro = 9/19 (accuracy 0.9).
    true = ["billing"] * 9 + ["account"]
    pred = ["billing"] * 10
    assert metrics.macro_f1(true, pred, LABELS) == pytest.approx(9 / 19)
    assert metrics.accuracy(true, pred) == 0.9


def test_urgent_recall_and_missed() -> None:
    # urgent tickets: predicted urgent, high, None -> 1 of 3 caught, 2 missed (None counts as missed).
    assert metrics.urgent_recall(TRUE_P, PRED_P) == pytest.approx(1 / 3)
    assert metrics.urgent_missed(TRUE_P, PRED_P) == 2
    assert metrics.urgent_recall(["low"], ["urgent"]) is None  # no urgent tickets: undefined
    assert metrics.urgent_missed(["low"], ["urgent"]) == 0


def test_over_and_under_escalations() -> None:
    # low->medium over; medium->medium equal; high->low under; urgent->urgent equal;
    # urgent->high under; urgent->None neither. Over 1, under 2.
    assert metrics.escalations(TRUE_P, PRED_P) == (1, 2)
    assert metrics.per_1000(1, 6) == pytest.approx(166.6667, abs=1e-3)
    assert metrics.per_1000(2, 6) == pytest.approx(333.3333, abs=1e-3)
    assert metrics.per_1000(0, 0) is None


def _outcome(i: int, true_c: str, true_p: str, pred: tuple[str, str] | None, *, status: int = 200,
             error: str | None = None, latency: float = 0.1, parsed: bool | None = None) -> Outcome:
    return Outcome(id=str(i), true_category=true_c, true_priority=true_p, status=status,
                   parsed_json=pred is not None if parsed is None else parsed, schema_valid=pred is not None,
                   category=pred[0] if pred else None, priority=pred[1] if pred else None, error=error,
                   latency_s=latency, prompt_tokens=100 if status == 200 else None,
                   completion_tokens=20 if pred else None, served_by="m" if status == 200 else None, output=None)


def test_summarize_triage_is_consistent() -> None:
    outcomes = [
        _outcome(0, "billing", "high", ("billing", "high"), latency=0.1),
        _outcome(1, "technical", "urgent", ("technical", "high"), latency=0.2),  # under-escalated, urgent missed
        _outcome(2, "account", "low", None, status=502, latency=0.3),  # no schema-valid output
        _outcome(3, "shipping", "medium", None, status=None, error="ReadTimeout: timed out", latency=5.0),
        _outcome(4, "returns", "low", None, parsed=True, latency=0.4),  # JSON but not schema-valid
    ]
    m = summarize_triage(outcomes)
    assert (m.n, m.errors) == (5, 1)
    assert m.error_messages == {"ReadTimeout: timed out": 1}
    assert m.json_parse_rate == pytest.approx(3 / 5)
    assert m.schema_valid_rate == pytest.approx(2 / 5)
    assert m.category_accuracy == pytest.approx(2 / 5) and m.priority_accuracy == pytest.approx(1 / 5)
    assert m.misrouted == 3 and m.misrouted_per_1000 == pytest.approx(600)
    assert (m.urgent_tickets, m.urgent_recall, m.urgent_missed) == (1, 0.0, 1)
    assert (m.over_escalations, m.under_escalations) == (0, 1)
    assert m.under_escalations_per_1000 == pytest.approx(200)
    # Latency over the 4 requests that got an HTTP response: 100, 200, 300, 400 ms.
    assert m.latency_p50_ms == pytest.approx(250) and m.latency_p95_ms == pytest.approx(385)
    assert m.mean_prompt_tokens == 100 and m.mean_completion_tokens == 20
    assert sum(map(sum, m.category_confusion.matrix)) == 5
    assert [row[-1] for row in m.category_confusion.matrix] == [0, 0, 1, 1, 1, 0]  # invalid column
    assert m.served_by == {"m": 3}


# ------------------------------------------------------------------ voice measures
STYLE = voice.BrandStyle(greetings=[r"(?i)hello\b", "Hi there!"], sign_off="Warm regards,\nThe Acme Team",
                         forbidden_words=["cheap"], source="test")


def test_greeting_regex_or_prefix() -> None:
    assert voice.has_greeting("  Hello Sam, thanks for writing.", STYLE.greetings)
    assert voice.has_greeting("Hi there! How can I help?", STYLE.greetings)
    assert not voice.has_greeting("Hi Sam.", STYLE.greetings)
    assert not voice.has_greeting("hi there! How can I help?", STYLE.greetings)  # a prefix keeps its case
    assert not voice.has_greeting("Sure. Hello!", STYLE.greetings)  # only at the start
    assert voice.has_greeting("Hey, sorry to hear that.", voice.DEFAULT_GREETINGS)


def test_sign_off_brand_text_or_generic() -> None:
    assert voice.has_sign_off("We refunded you.\n\nwarm regards, the ACME team.", STYLE.sign_off)
    assert not voice.has_sign_off("We refunded you.\nBest,\nSam", STYLE.sign_off)
    assert voice.has_sign_off("We refunded you.\nBest regards,\nSam", None)
    assert not voice.has_sign_off("We refunded you. Let me know.", None)


def test_formality_measures() -> None:
    text = "I can't do that, it's late and we'll see. John's car."
    # 11 words (I can't do that it's late and we'll see John's car); contractions can't, it's, we'll
    # (John's is a possessive): 3 per 11 words = 27.27 per 100.
    assert len(voice.words(text)) == 11
    assert voice.contractions_per_100_words(text) == pytest.approx(300 / 11)
    assert voice.contractions_per_100_words("") == 0.0
    assert voice.score_reply("x", "Great! Thanks!!", STYLE).exclamation_marks == 3
    # gonna x2 (case-insensitive) + lol + cheap (brand-forbidden); "cheaper" is another word.
    assert voice.slang_count("Gonna fix it, lol. gonna be cheap, not cheaper.", STYLE.forbidden_words) == 4


def test_facts_and_answer_share() -> None:
    message = "My order A-1234 for the Pro Plan was charged $29.00 twice. Tracking says Monday."
    # Digit tokens A-1234 and $29.00 (sign dropped); the name "Pro Plan"; "My" and "Tracking" start
    # sentences, "Monday" is a common word.
    assert voice.extract_facts(message) == ["a-1234", "29.00", "pro plan"]
    scores = voice.score_reply(message, "Hello! Your Pro Plan refund of $29.00 is on its way.", STYLE)
    assert (scores.facts, scores.facts_restated) == (3, 2)
    assert scores.answer_share == pytest.approx(2 / 3)
    # Hello Your Pro Plan refund of 29.00 is on its way: 11 words (29.00 is one).
    assert scores.greeting and not scores.sign_off and scores.words == 11
    assert voice.score_reply("how are you", "fine", STYLE).answer_share is None  # no facts: undefined


def test_reference_token_f1() -> None:
    # common tokens: the, cat -> precision 2/3, recall 2/4, F1 = 2 * (1/3) / (7/6) = 4/7.
    assert voice.token_f1("The cat sat", "the cat ran away") == pytest.approx(4 / 7)
    assert voice.token_f1("dog", "cat") == 0.0
    assert voice.token_f1("", "") == 1.0
    assert voice.score_reply("x", "The cat sat", STYLE, reference="the cat ran away").reference_f1 == pytest.approx(4 / 7)


def test_voice_aggregate_and_deltas() -> None:
    replies = [voice.score_reply("Order 42 is late", "Hello, order 42 ships today.\nWarm regards, The Acme Team", STYLE),
               voice.score_reply("thanks", "Yeah we're gonna check!", STYLE)]
    agg = voice.aggregate(replies)
    assert agg["greeting_rate"] == 0.5 and agg["sign_off_rate"] == 0.5
    assert agg["exclamation_marks"] == 0.5
    assert agg["slang_words"] == 1.0  # yeah + gonna in the second reply, 0 in the first: mean 1
    assert agg["answer_share"] == 1.0  # only the first message has a fact (42), restated
    assert agg["reference_f1"] is None
    # contractions: 0 per 100 in the first; "we're" in 4 words -> 25 in the second; mean 12.5
    assert agg["contractions_per_100_words"] == pytest.approx(12.5)
    base = {**agg, "greeting_rate": 0.0, "reference_f1": 0.3}
    delta = voice.deltas(agg, base)
    assert delta["greeting_rate"] == 0.5 and delta["words"] == 0.0 and delta["reference_f1"] is None


def test_brand_style_from_the_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    import service.training.recipes as recipes

    # The brand-voice recipe's shape: GREETINGS is one regex, FORBIDDEN_WORDS a tuple.
    recipe = SimpleNamespace(GREETINGS=r"^(?:(?:Dear|Hello) [^\W\d_][\w'-]*|Hello),\n",
                             SIGN_OFF="Warm regards,\nThe Alder & Pine Outfitters Team", FORBIDDEN_WORDS=("hey", "asap"))
    monkeypatch.setattr(recipes, "recipe_module", lambda name: recipe)
    style = voice.load_brand_style()
    assert style.source == "adapters/recipes/brand_voice.py" and style.forbidden_words == ["hey", "asap"]
    reply = "Dear Maya,\nYour parcel ships today.\n\nWarm regards,\nThe Alder & Pine Outfitters Team"
    scores = voice.score_reply("Where is my parcel?", reply, style)
    assert scores.greeting and scores.sign_off and scores.slang_words == 0
    scores = voice.score_reply("Where is my parcel?", "Hey Maya! Shipping asap.\nCheers", style)
    assert not scores.greeting and not scores.sign_off and scores.slang_words == 2


def test_brand_style_falls_back_to_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    import service.training.recipes as recipes

    def missing(name: str) -> None:
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(recipes, "recipe_module", missing)
    style = voice.load_brand_style()
    assert style.greetings == voice.DEFAULT_GREETINGS and style.sign_off is None and style.forbidden_words == []
    assert style.source.startswith("defaults")
