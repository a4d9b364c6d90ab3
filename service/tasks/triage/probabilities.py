"""Label probabilities of a structured reply, read from the model's own token probabilities where
the constrained decoder wrote each label.

At the token where a label's value starts, every alternative the engine reported (the sampled
token and the top alternatives, vLLM's raw log-probabilities: before the grammar's mask) is matched
against the allowed labels: a token that can only begin one label adds its probability to that
label (under the constraint, the rest of the label is then forced). A token that begins several
labels (labels sharing a first token, e.g. "account" / "accounting") is resolved one position
further: on the decoded path from the next position's alternatives, elsewhere by `probe`, which
asks the engine for the next position's alternatives after that token. Tokens that begin no label
are what the constraint masks out, so the distribution over the labels is renormalised.
Labels the engine reported no token for get probability 0 (less than the last alternative's).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence

from service.engine.types import TokenLogprob, TopToken

# The engine's top alternatives after `token_ids` (the reply's tokens so far): for a token that
# begins several labels off the decoded path.
Probe = Callable[[list[int]], Awaitable[list[TopToken]]]


async def label_probabilities(tokens: Sequence[TokenLogprob], fields: Mapping[str, Sequence[str]],
                              probe: Probe | None = None) -> dict[str, dict[str, float]] | None:
    """For each field, the distribution over its labels of the string value the reply these tokens
    spell gives it; None when the reply does not show where one of the values starts."""
    text = "".join(t.token for t in tokens)
    distributions = {}
    for field, labels in fields.items():
        match = re.search(r'"' + re.escape(field) + r'"\s*:\s*"', text)
        position, offset = _token_at(tokens, match.end()) if match is not None else (None, 0)
        if match is None or position is None:
            return None
        prefix = text[offset:match.end()]  # the part of the value's first token before the value
        # Labels as the reply spells them: JSON-escaped, without their quotes.
        masses = await _masses(tokens, position, prefix, {label: json.dumps(label)[1:-1] for label in labels}, probe)
        total = sum(masses.values())
        if total <= 0.0:
            return None
        distributions[field] = {label: masses.get(label, 0.0) / total for label in labels}
    return distributions


def _token_at(tokens: Sequence[TokenLogprob], char: int) -> tuple[int | None, int]:
    """The index of the token that holds character `char` of the reply, and where it starts."""
    start = 0
    for index, token in enumerate(tokens):
        end = start + len(token.token)
        if start <= char < end:
            return index, start
        start = end
    return None, start


async def _masses(tokens: Sequence[TokenLogprob], position: int, prefix: str, remaining: dict[str, str],
                  probe: Probe | None) -> dict[str, float]:
    """Probability mass per label at `position`, where each label still has `remaining[label]` to
    write after `prefix` (text of the token before the value)."""
    chosen = tokens[position]
    alternatives = {alt.token_id: alt for alt in chosen.top}
    alternatives[chosen.token_id] = chosen
    masses: dict[str, float] = {}
    for alternative in alternatives.values():
        if not alternative.token.startswith(prefix):
            continue
        written = alternative.token[len(prefix):]
        fitting = {label: rest for label, rest in remaining.items() if _begins(written, rest)}
        if not fitting:
            continue
        weight = math.exp(alternative.logprob)
        if len(fitting) == 1:
            label = next(iter(fitting))
            masses[label] = masses.get(label, 0.0) + weight
            continue
        # Several labels begin with this token: split its mass by the next position's distribution.
        after = {label: rest[len(written):] for label, rest in fitting.items()}
        if alternative.token_id == chosen.token_id and position + 1 < len(tokens):
            deeper = await _masses(tokens, position + 1, "", after, probe)
        elif probe is not None:
            path = [t.token_id for t in tokens[:position]] + [alternative.token_id]
            deeper = await _masses([_as_position(await probe(path))], 0, "", after, probe=None)
        else:
            deeper = {label: 1.0 for label in after}
        share = sum(deeper.values())
        for label, mass in deeper.items():
            if share > 0:
                masses[label] = masses.get(label, 0.0) + weight * mass / share
    return masses


def _begins(written: str, rest: str) -> bool:
    """Whether a token that writes `written` can begin the label text `rest` (and its closing quote)."""
    if not written:
        return False
    return rest.startswith(written) or written.startswith(rest + '"')


def _as_position(top: list[TopToken]) -> TokenLogprob:
    """A probed position as a decoded one whose chosen token is none of the alternatives."""
    return TokenLogprob(token_id=-1, token="\0", logprob=-9999.0, top=top)
