"""Invented specifics in brand-voice replies: what the reply states that neither the message nor
the brand's fact sheet does."""

from __future__ import annotations

import json
from pathlib import Path

from service.evaluation.voice import BrandStyle, invented_specifics, load_brand_style, score_reply

DATA = Path(__file__).resolve().parents[3] / "adapters" / "data"
MESSAGE = ("Hello Alder & Pine, I returned the Ranger 45L Backpack (order AP-690348) two weeks ago and still no "
           "refund! Thank you! Chloe")
FACTS = "Refunds are issued within five business days. Visit alderandpine.example. Stores open 10 am to 7 pm."


def test_made_up_phone_numbers_amounts_dates_addresses_and_deadlines_are_invented() -> None:
    reply = ("Dear Chloe, call us at 1-800-222-8888 or visit www.alderandpine.example. Your refund for AP-690348 "
             "comes within five business days, or within 3 days. A $25 credit and 10% off until March 3rd. "
             "Email help@alderpine.com. It has been two weeks, I know.")
    assert invented_specifics(reply, MESSAGE, FACTS) == [
        "1-800-222-8888", "3 days", "$25", "10%", "March 3rd", "help@alderpine.com"]


def test_a_reply_that_restates_the_message_and_the_fact_sheet_invents_nothing() -> None:
    reply = ("Dear Chloe, I am sorry: the refund for order AP-690348 (two weeks ago) is issued within five business "
             "days; see alderandpine.example, our stores open from 10 am.")
    assert invented_specifics(reply, MESSAGE, FACTS) == []
    style = BrandStyle(greetings=["Dear"], sign_off=None, forbidden_words=[], source="test", fact_sheet=FACTS)
    assert score_reply(MESSAGE, reply, style).invented == []
    assert score_reply(MESSAGE, reply + " Call 555-123-4567.", style).invented == ["555-123-4567"]


def test_the_recipes_own_replies_invent_nothing_against_its_fact_sheet() -> None:
    # The measure's false positives: the generator only restates the message and the brand's facts.
    sheet = load_brand_style().fact_sheet
    assert sheet, "the brand-voice recipe ships its fact sheet"
    for name in ("voice_validation.jsonl", "voice_train.jsonl"):
        for line in (DATA / name).read_text().splitlines():
            example = json.loads(line)
            assert invented_specifics(example["reply"], example["message"], sheet) == [], example["id"]
