"""`loragate` command line: one module per command group, each with `run(argv) -> int`.

Command modules are imported only when their command runs, so `loragate adapters list` does not
pay for importing the engine or torch.
"""

from __future__ import annotations

import importlib
import sys

# command -> (module in service.cli, one-line help)
COMMANDS = {
    "serve": ("serve", "Start the HTTP service (`loragate serve --help` lists every setting)."),
    "prepare-model": ("model", "Prepare the default model folder."),
    "adapters": ("adapters", "Manage adapters on a running server: list, add, push, remove."),
    "routes": ("routes", "Manage A/B routes on a running server: list, show, set, delete, report, rollout."),
    "promote": ("promote", "Evaluate an adapter against a route's control; start its rollout only if not worse."),
    "eval": ("evaluate", "Evaluate targets of a running server on a labelled dataset (triage or --voice)."),
    "train": ("train", "Fine-tune a LoRA adapter from a recipe (ticket-triage, brand-voice)."),
    "bench": ("bench", "Benchmark loragate against vLLM's own server; adapter, constraint and swap costs."),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        lines = [f"  {name:<15} {help_}" for name, (_, help_) in COMMANDS.items()]
        print("usage: loragate COMMAND [options]\n\ncommands:\n" + "\n".join(lines))
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module, _ = COMMANDS[argv[0]]
    return importlib.import_module(f"service.cli.{module}").run(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
