"""Label probabilities read from a reply's token alternatives, and the decision policy over them."""

from __future__ import annotations

import math

import pytest

from service.engine.types import TokenLogprob, TopToken
from service.tasks.triage.policy import decide, scaled
from service.tasks.triage.probabilities import label_probabilities
from service.tasks.triage.schema import LabelProbabilities, TriagePolicy, TriageThresholds

pytestmark = pytest.mark.anyio
CATEGORIES = ("billing", "technical", "account", "shipping", "returns", "general")



def position(token: str, token_id: int, logprob: float, *alternatives: tuple[str, int, float]) -> TokenLogprob:
    return TokenLogprob(token_id=token_id, token=token, logprob=logprob,
                        top=[TopToken(token=t, token_id=i, logprob=lp) for t, i, lp in alternatives])


def reply(*positions: TokenLogprob) -> list[TokenLogprob]:
    return list(positions)


def plain(token: str, token_id: int) -> TokenLogprob:
    return position(token, token_id, 0.0)


async def one_field(tokens: list[TokenLogprob], field: str, labels, probe=None) -> dict[str, float] | None:
    read = await label_probabilities(tokens, {field: labels}, probe)
    return read[field] if read is not None else None


async def test_each_label_gets_the_mass_of_every_token_that_can_only_begin_it() -> None:
    tokens = reply(plain('{"', 1), plain("category", 2), plain('":"', 3),
                   position("b", 10, math.log(0.5), ("b", 10, math.log(0.5)), ("bill", 11, math.log(0.1)),
                            ("technical", 12, math.log(0.2)), ("sh", 13, math.log(0.05)),
                            ("The", 14, math.log(0.1)), ('"', 15, math.log(0.05))),
                   plain("illing", 16), plain('","', 17))
    probabilities = await one_field(tokens, "category", CATEGORIES)
    assert probabilities is not None and list(probabilities) == list(CATEGORIES)  # exactly the schema's labels
    # "The" and a bare quote begin no label: masked by the constraint, renormalised away.
    assert probabilities["billing"] == pytest.approx(0.6 / 0.85)
    assert probabilities["technical"] == pytest.approx(0.2 / 0.85)
    assert probabilities["shipping"] == pytest.approx(0.05 / 0.85)
    assert probabilities["account"] == 0.0 and sum(probabilities.values()) == pytest.approx(1.0)


async def test_a_value_that_starts_inside_a_token_is_read_after_that_tokens_own_text() -> None:
    tokens = reply(plain('{"category":', 1),
                   position('"acc', 2, math.log(0.7), ('"acc', 2, math.log(0.7)), ('"general', 3, math.log(0.3)),
                            ("acc", 4, math.log(0.5))),  # without the quote: not this position's value
                   plain('ount","', 5))
    probabilities = await one_field(tokens, "category", CATEGORIES)
    assert probabilities == pytest.approx({**dict.fromkeys(CATEGORIES, 0.0), "account": 0.7, "general": 0.3})


async def test_labels_sharing_a_first_token_are_split_by_the_next_position_on_the_decoded_path() -> None:
    labels = ("account", "accounting", "billing")
    tokens = reply(plain('{"team":"', 1),
                   position("account", 2, math.log(0.8), ("account", 2, math.log(0.8)), ("billing", 3, math.log(0.2))),
                   position('"}', 4, math.log(0.75), ('"}', 4, math.log(0.75)), ("ing", 5, math.log(0.25))))
    probabilities = await one_field(tokens, "team", labels)
    assert probabilities == pytest.approx({"account": 0.6, "accounting": 0.2, "billing": 0.2})


async def test_a_shared_first_token_off_the_decoded_path_is_resolved_by_a_probe() -> None:
    labels = ("account", "accounting", "billing")
    asked: list[list[int]] = []

    async def probe(path: list[int]) -> list[TopToken]:
        asked.append(path)
        return [TopToken(token='"', token_id=9, logprob=math.log(0.1)),
                TopToken(token="ing", token_id=5, logprob=math.log(0.9))]

    tokens = reply(plain('{"team":"', 1),
                   position("billing", 3, math.log(0.6), ("billing", 3, math.log(0.6)), ("account", 2, math.log(0.4))),
                   plain('"}', 4))
    probabilities = await one_field(tokens, "team", labels, probe)
    assert asked == [[1, 2]]  # the reply up to the label, then the shared token
    assert probabilities == pytest.approx({"account": 0.04, "accounting": 0.36, "billing": 0.6})


async def test_no_value_for_a_field_is_none() -> None:
    assert await one_field(reply(plain('{"other":"x"}', 1)), "category", CATEGORIES) is None
    tokens = reply(plain('{"category":"', 1), plain("billing", 2), plain('"}', 3))
    assert await label_probabilities(tokens, {"category": CATEGORIES, "priority": ("low", "high")}) is None


async def test_every_field_is_read_from_one_reply() -> None:
    tokens = reply(plain('{"category":"', 1), position("billing", 2, math.log(0.8), ("technical", 3, math.log(0.2))),
                   plain('","priority":"', 4), position("low", 5, math.log(0.5), ("high", 6, math.log(0.5))),
                   plain('"}', 7))
    read = await label_probabilities(tokens, {"category": CATEGORIES, "priority": ("low", "high")})
    assert read is not None and read["category"]["billing"] == pytest.approx(0.8)
    assert read["priority"] == pytest.approx({"low": 0.5, "high": 0.5})


def probs(category: dict[str, float], priority: dict[str, float]) -> LabelProbabilities:
    return LabelProbabilities(category=category, priority=priority)


CATEGORY = {"billing": 0.9, "technical": 0.1}


def test_priority_is_urgent_from_the_threshold_and_confidence_is_that_of_the_returned_label() -> None:
    policy = TriagePolicy(urgent_threshold=0.3, review_threshold=0.8)
    decision = decide(policy, probs(CATEGORY, {"low": 0.1, "medium": 0.55, "high": 0.0, "urgent": 0.35}),
                      ("technical", "low"), input_truncated=False)
    assert (decision.category, decision.priority) == ("billing", "urgent")
    assert decision.confidence.category == 0.9 and decision.confidence.priority == 0.35
    assert not decision.needs_review and decision.review_reasons == []
    below = decide(policy.overridden(TriageThresholds(urgent_threshold=0.4)),
                   probs(CATEGORY, {"low": 0.1, "medium": 0.55, "high": 0.0, "urgent": 0.35}), ("billing", "low"), False)
    assert below.priority == "medium"


def test_review_reasons_follow_the_thresholds_and_the_input() -> None:
    policy = TriagePolicy(urgent_threshold=0.5, review_threshold=0.95, priority_review_threshold=0.6)
    decision = decide(policy, probs(CATEGORY, {"low": 0.5, "urgent": 0.5}), ("billing", "low"), input_truncated=True)
    assert decision.needs_review
    assert decision.review_reasons == ["low_category_confidence", "low_priority_confidence", "input_truncated"]
    missing = decide(policy, None, ("billing", "low"), input_truncated=False)
    assert (missing.category, missing.priority, missing.needs_review) == ("billing", "low", True)
    assert missing.review_reasons == ["probabilities_unavailable"] and missing.probabilities is None


def test_temperature_scaling_is_renormalised_and_keeps_zeros() -> None:
    assert scaled({"a": 0.8, "b": 0.2, "c": 0.0}, 1.0) == pytest.approx({"a": 0.8, "b": 0.2, "c": 0.0})
    sharper = scaled({"a": 0.8, "b": 0.2, "c": 0.0}, 0.5)
    assert sharper == pytest.approx({"a": 0.64 / 0.68, "b": 0.04 / 0.68, "c": 0.0})


def test_an_adapter_policy_file_overrides_thresholds_and_temperatures() -> None:
    from service.adapters.validation import TriagePolicyFile

    file = TriagePolicyFile.model_validate({"urgent_threshold": 0.2, "temperature": {"category": 1.5},
                                            "calibrated_on": {"n": 400}})
    policy = TriagePolicy(urgent_threshold=0.5, review_threshold=0.8).overridden(file)
    assert policy.urgent_threshold == 0.2 and policy.review_threshold == 0.8
    assert policy.temperature.category == 1.5 and policy.temperature.priority == 1.0
