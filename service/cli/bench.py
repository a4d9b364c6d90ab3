"""`loragate bench`: loragate against vLLM's own server, and what adapters, constrained decoding and
hot swaps cost inside loragate. The benchmark is the `loadtests` package, installed beside `service`
(it starts its servers with `service.testing`); its own dependencies (matplotlib, py-spy for
--profile) are imported when it runs."""

from __future__ import annotations

import sys


def run(argv: list[str]) -> int:
    try:
        from loadtests.bench import main  # imported here: it loads the benchmark's own dependencies
    except ModuleNotFoundError as exc:
        if exc.name not in ("loadtests", "loadtests.bench"):
            raise
        # An install without it (the container images copy only `service/`).
        print("loragate bench: the `loadtests` package is not installed (pip install loragate from a source "
              "checkout)", file=sys.stderr)
        return 2
    return main(argv)
