"""Which variant of a route serves a request.

With a routing key the choice is weighted rendezvous hashing: every variant scores
`weight / -ln(u)` with `u` a hash of (route, key, variant) in (0, 1), and the highest score wins.
The result depends only on the route, the key and the weights, so it is the same on every replica
and after restarts with no stored table; a variant wins with probability weight / total; and
changing weights moves only the keys that must move (raising one variant's weight only moves
keys into it). Without a key the choice is weighted random.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence

from service.routing.types import RouteVariant

_SCALE = float(1 << 64)


def _unit_hash(route: str, key: str, target: str) -> float:
    digest = hashlib.blake2b(f"{route}\x00{key}\x00{target}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 0.5) / _SCALE  # strictly inside (0, 1)


def assign_variant(route: str, variants: Sequence[RouteVariant], key: str | None,
                   rng: random.Random | None = None) -> str:
    """The target of the variant that serves this request (only variants with weight > 0)."""
    live = [v for v in variants if v.weight > 0]
    if not live:
        raise ValueError(f"route {route!r} has no variant with a positive weight")
    if key is None:
        return (rng or random).choices([v.target for v in live], weights=[v.weight for v in live])[0]
    return max(live, key=lambda v: v.weight / -math.log(_unit_hash(route, key, v.target))).target


def shadow_selected(route: str, fraction: float, key: str | None, rng: random.Random | None = None) -> bool:
    """Mirror this request? Keyed requests are mirrored consistently (the same keys every time)."""
    if key is None:
        return (rng or random).random() < fraction
    return _unit_hash(route, key, "\x00shadow") < fraction
