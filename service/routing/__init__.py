"""Resolve the `model` a request names into what serves it: base model, adapter or route."""

from service.routing.router import ModelRouter, ServingTarget

__all__ = ["ModelRouter", "ServingTarget"]
