"""`loragate train`: fine-tune a LoRA adapter of the base model from a data recipe."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from service.config import PROJECT_ROOT

RECIPES = ("ticket-triage", "brand-voice")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loragate train",
        description="Fine-tune a LoRA adapter of the base model (peft, on the CPU) from a recipe's data in "
        "adapters/data/. Unset options take the recipe's defaults (service/training/config.py). "
        "Writes a PEFT folder with README.md model card, loss.png, train_log.jsonl and training_metrics.json.",
    )
    parser.add_argument("--recipe", required=True, choices=RECIPES)
    parser.add_argument("--output", type=Path, help="Adapter folder (default: adapters/<recipe>).")
    parser.add_argument("--model", type=Path, help="Base model folder (default: the prepared SmolLM2-135M-Instruct).")
    parser.add_argument("--train-file", type=Path, help="Training JSON lines (default: the recipe's file).")
    parser.add_argument("--validation-file", type=Path, help="Validation JSON lines (default: the recipe's file).")
    lora = parser.add_argument_group("LoRA")
    lora.add_argument("--rank", type=int)
    lora.add_argument("--alpha", type=float)
    lora.add_argument("--dropout", type=float)
    lora.add_argument("--target-modules", help="Comma list, e.g. q_proj,k_proj,v_proj,o_proj.")
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=float, help="Passes over the data (replaces the recipe's step budget).")
    opt.add_argument("--max-steps", type=int, help="Optimizer steps (overrides --epochs).")
    opt.add_argument("--learning-rate", type=float)
    opt.add_argument("--schedule", choices=("cosine", "linear"))
    opt.add_argument("--warmup-ratio", type=float)
    opt.add_argument("--weight-decay", type=float)
    opt.add_argument("--batch-size", type=int)
    opt.add_argument("--grad-accum", type=int)
    opt.add_argument("--max-length", type=int, help="Skip examples longer than this many tokens.")
    opt.add_argument("--seed", type=int)
    opt.add_argument("--class-token-weight", type=float,
                     help="Loss weight of the category value tokens, and the priority's by default (ticket-triage).")
    opt.add_argument("--priority-token-weight", type=float,
                     help="Loss weight of the priority value tokens (ticket-triage; default: --class-token-weight).")
    opt.add_argument("--quote-token-weight", type=float,
                     help="Loss weight of the quote marks around a phrase restated from the ticket (ticket-triage).")
    opt.add_argument("--balance-labels", action=argparse.BooleanOptionalAction, default=None,
                     help="Weight those tokens by inverse label frequency (ticket-triage default: on).")
    data = parser.add_argument_group("data and evaluation")
    data.add_argument("--train-limit", type=int, help="Use only the first N training examples (tiny runs).")
    data.add_argument("--extra-train-file", type=Path,
                      help="More labelled examples mixed into the training data, e.g. your own tickets.")
    data.add_argument("--extra-train-repeat", type=int,
                      help="Times each extra example joins the training pool (default 1; 0: none).")
    data.add_argument("--validation-limit", type=int, help="Validation examples for loss and generation.")
    data.add_argument("--generation-limit", type=int, help="Validation examples answered by generation.")
    data.add_argument("--eval-every", type=int, help="Validation loss every N steps (0: 4 times a run).")
    data.add_argument("--max-new-tokens", type=int, help="Token budget of a validation answer.")
    run = parser.add_argument_group("run")
    run.add_argument("--resume", action="store_true", help="Continue from <output>/.checkpoint/.")
    run.add_argument("--stop-after", type=int, help="Checkpoint and exit after N steps (continue with --resume).")
    run.add_argument("--checkpoint-every", type=int, help="Steps between checkpoints.")
    run.add_argument("--log-every", type=int, help="Steps between progress lines.")
    run.add_argument("--threads", type=int, help="torch threads (default: all cores).")
    run.add_argument("--save-dtype", choices=("bfloat16", "float32"))
    return parser


def run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    # The cores are shared with other jobs: OpenMP threads that spin while waiting for each other
    # made a step 3-10x slower under load; passive waiting costs little when the machine is idle.
    # Must be set before torch (and its OpenMP runtime) is imported.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from service.training.config import config_for

    overrides = {key: getattr(args, key) for key in (
        "rank", "alpha", "dropout", "epochs", "max_steps", "learning_rate", "schedule", "warmup_ratio",
        "weight_decay", "batch_size", "grad_accum", "max_length", "seed", "train_limit", "validation_limit",
        "generation_limit", "eval_every", "max_new_tokens", "stop_after", "checkpoint_every", "log_every",
        "threads", "save_dtype", "class_token_weight", "priority_token_weight",
        "quote_token_weight", "balance_labels", "extra_train_repeat",
    )}
    if args.extra_train_file:
        overrides["extra_train_file"] = str(args.extra_train_file.resolve())
    if args.target_modules:
        overrides["target_modules"] = [m.strip() for m in args.target_modules.split(",") if m.strip()]
    try:
        config = config_for(args.recipe, **overrides)
    except ValidationError as exc:
        print(f"loragate train: invalid settings\n{exc}", file=sys.stderr)
        return 2

    from service.training.recipes import data_files

    default_train, default_validation = data_files(args.recipe)
    train_file = args.train_file or default_train
    validation_file = args.validation_file or default_validation
    for path in (train_file, validation_file):
        if not path.is_file():
            print(f"loragate train: {path} does not exist (generate the recipe's data first)", file=sys.stderr)
            return 2
    model_dir = args.model or _default_model_dir()
    output = args.output or PROJECT_ROOT / "adapters" / args.recipe

    from service.training.trainer import TrainingError, train

    try:
        result = train(config, output, model_dir, train_file, validation_file, resume=args.resume)
    except TrainingError as exc:
        print(f"loragate train: {exc}", file=sys.stderr)
        return 2
    return 130 if result.status == "interrupted" else 0


def _default_model_dir() -> Path:
    from service.config import Settings

    settings = Settings()
    if settings.model is None:  # the default model: prepared (or verified) on first use
        from service.model_prep import prepare_default_model

        prepare_default_model(settings.default_model_dir)
    return settings.model_dir
