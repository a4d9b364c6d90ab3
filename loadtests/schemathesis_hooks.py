"""Hooks for `loadtests.schemathesis_run` (loaded by schemathesis through SCHEMATHESIS_HOOKS).

A drawn `model` almost never names a served model, so nearly every generation request would end
in 404 before reaching the engine; half the bodies that carry a string `model` get one of the
served names instead (LORAGATE_ST_MODELS, comma-separated). Only a string is replaced by a string:
a case generated to be invalid stays invalid.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from hypothesis import strategies as st
from hypothesis.internal import lambda_sources

# CPython 3.11's ast.parse may raise SystemError ("AST constructor recursion depth mismatch",
# python/cpython#106905) when called deep in a stack, as Hypothesis does to describe a lambda in a
# recursive strategy's repr (only for a message); a run then ends in a runtime error that says
# nothing about the API. The description falls back to a plain "lambda".
_describe_lambda = lambda_sources.lambda_description


def _lambda_description(f: Any) -> str:
    try:
        return _describe_lambda(f)
    except SystemError:
        return "lambda"


lambda_sources.lambda_description = _lambda_description

MODELS = [name for name in os.environ.get("LORAGATE_ST_MODELS", "").split(",") if name]


@schemathesis.hook
def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
    if not MODELS or not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return st.just(body)
    return st.one_of(st.just(body), st.sampled_from(MODELS).map(lambda model: {**body, "model": model}))


# The adapter upload's body is raw bytes (a .tar.gz); send drawn bytes as they are.
schemathesis.serializer.alias("application/gzip", "application/octet-stream")
