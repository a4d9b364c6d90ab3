"""Resolve the `model` a request names into what serves it: base model, adapter or A/B route."""

from service.routing.assignment import assign_variant
from service.routing.registry import RouteRegistry
from service.routing.rollout import RolloutGuard
from service.routing.router import ModelRouter, ServingTarget
from service.routing.types import (
    MAX_VARIANTS,
    Route,
    RouteGuard,
    RoutesFile,
    RouteSpec,
    RouteVariant,
    ShadowTarget,
)

__all__ = [
    "MAX_VARIANTS", "ModelRouter", "RolloutGuard", "Route", "RouteGuard", "RouteRegistry", "RouteSpec",
    "RouteVariant", "RoutesFile", "ServingTarget", "ShadowTarget", "assign_variant",
]
