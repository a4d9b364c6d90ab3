"""`loragate bench`: loragate against vLLM's own server, and what adapters, constrained decoding and
hot swaps cost inside loragate. The benchmark lives in the repository's `loadtests/` (it starts
servers with the integration tests' helpers), so this command needs a source checkout."""

from __future__ import annotations

import sys
from pathlib import Path

import service


def run(argv: list[str]) -> int:
    root = Path(service.__file__).resolve().parent.parent  # the checkout `service` was imported from
    if not (root / "loadtests" / "bench.py").is_file() or not (root / "tests" / "integration").is_dir():
        print(f"loragate bench: needs a source checkout with loadtests/ and tests/ (looked in {root})",
              file=sys.stderr)
        return 2
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from loadtests.bench import main  # imported here: it loads the benchmark's own dependencies

    return main(argv)
