"""The training loop: plain torch + peft, resumable, with progress on stderr and `train_log.jsonl`.

A run either finishes (adapter, model card and metrics written, checkpoint removed), stops on
purpose after `stop_after` steps, or is interrupted by SIGINT/SIGTERM; the last two leave a
checkpoint in `<output>/.checkpoint/` for `--resume`.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from service.training import checkpoint as ckpt
from service.training.config import TrainingConfig
from service.training.data import (
    BatchSchedule,
    Example,
    AnswerWeights,
    balanced_label_factors,
    encode_records,
    end_of_turn_id,
    read_jsonl,
)
from service.training.forward import batch_loss, collate, validation_loss
from service.training.recipes import project_path

LOG_FILE = ckpt.LOG_FILE
MIN_LR_RATE = 0.1  # the schedules decay to 10% of the peak learning rate
Progress = Callable[[str], None]


class TrainingError(Exception):
    """A run that cannot start or continue (bad data, mismatched checkpoint...)."""


def _stderr(message: str) -> None:
    print(f"[train] {message}", file=sys.stderr, flush=True)


@dataclass
class RunData:
    tokenizer: Any
    train: list[Example]
    validation: list[Example]
    skipped_train: list[str]
    skipped_validation: list[str]
    pad_id: int
    eos_id: int


@dataclass
class TrainingResult:
    status: Literal["finished", "stopped", "interrupted"]
    step: int
    total_steps: int
    output: Path
    metrics: dict[str, Any] = field(default_factory=dict)


def extra_records(config: TrainingConfig) -> list[dict[str, Any]]:
    """The config's extra labelled examples, each `extra_train_repeat` times."""
    if not config.mixes_extra:
        return []
    path = project_path(config.extra_train_file)
    if not path.is_file():
        raise TrainingError(f"extra training file {path} does not exist")
    return read_jsonl(path) * config.extra_train_repeat


def load_data(config: TrainingConfig, model_dir: Path, train_file: Path, validation_file: Path) -> RunData:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    records = read_jsonl(train_file, config.train_limit) + extra_records(config)
    factors = balanced_label_factors(records) if config.balance_labels else None
    weights = AnswerWeights(category=config.class_token_weight, priority=config.priority_weight,
                            quote=config.quote_token_weight, label_factors=factors)
    train, skipped = encode_records(tokenizer, config.recipe, records, config.max_length, weights)
    validation, skipped_val = encode_records(
        tokenizer, config.recipe, read_jsonl(validation_file, config.validation_limit), config.max_length)
    if not train:
        raise TrainingError(f"no training example of {train_file} fits --max-length {config.max_length}")
    eos_id = end_of_turn_id(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
    return RunData(tokenizer, train, validation, skipped, skipped_val, pad_id, eos_id)


def load_model(config: TrainingConfig, model_dir: Path) -> Any:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    # fp32: these CPUs have no fast bf16 matmul, and fp32 keeps the small LoRA updates exact.
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    torch.manual_seed(config.seed)  # LoRA A init
    lora = LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                      target_modules=list(config.target_modules), bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    model.train()
    return model


def lr_scheduler(optimizer: torch.optim.Optimizer, total: int, warmup: int, schedule: str,
                 ) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup over `warmup` steps, then cosine or linear decay to 10% of the peak at `total`:
    transformers' schedules, read one step ahead of a run one step longer, so that step 0 already
    trains (at 1/(warmup + 1) of the peak, where the library starts at 0)."""
    from transformers import get_cosine_with_min_lr_schedule_with_warmup, get_polynomial_decay_schedule_with_warmup

    if schedule == "cosine":
        library = get_cosine_with_min_lr_schedule_with_warmup(optimizer, warmup + 1, total + 1, min_lr_rate=MIN_LR_RATE)
    else:  # linear: a polynomial decay of power 1 (at least one decay step: it divides by their number)
        library = get_polynomial_decay_schedule_with_warmup(
            optimizer, warmup + 1, max(total, warmup + 1) + 1, lr_end=MIN_LR_RATE * optimizer.defaults["lr"], power=1.0)
    ahead = library.lr_lambdas[0]
    # A plain function, as before: the checkpoint stores the scheduler's state as JSON.
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: ahead(step + 1))


class _StopRequest:
    """SIGINT/SIGTERM ask the loop to checkpoint and exit after the current step; a second
    signal falls back to the default behaviour."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        _stderr(f"signal {signum}: stopping after this step (checkpoint kept; continue with --resume)")
        signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _fmt_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m{rest % 60:02d}s" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _read_log(path: Path, upto_step: int) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [row for row in rows if row.get("step", 0) <= upto_step]


def train(config: TrainingConfig, output: Path, model_dir: Path, train_file: Path, validation_file: Path,
          resume: bool = False, progress: Progress = _stderr) -> TrainingResult:
    torch.set_num_threads(config.threads or os.cpu_count() or 1)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    if ckpt.has_checkpoint(output) and not resume:
        raise TrainingError(f"{ckpt.checkpoint_dir(output)} holds an unfinished run: pass --resume to continue "
                            "it, or delete that folder to start over")
    if resume and not ckpt.has_checkpoint(output):
        raise TrainingError(f"--resume: no checkpoint in {ckpt.checkpoint_dir(output)}")
    if resume and (diff := _config_diff(ckpt.read_meta(output).config, config.resume_key())):
        raise TrainingError("--resume with settings that differ from the checkpoint's: " + "; ".join(diff))

    started = time.monotonic()
    data = load_data(config, model_dir, train_file, validation_file)
    schedule = BatchSchedule([len(e.input_ids) for e in data.train], config.batch_size, config.grad_accum, config.seed)
    total = schedule.total_steps(config.epochs, config.max_steps)
    model = load_model(config, model_dir)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    warmup = math.ceil(config.warmup_ratio * total)
    scheduler = lr_scheduler(optimizer, total, warmup, config.schedule)
    extra = (f" (with {config.extra_train_file} x{config.extra_train_repeat})"
             if config.mixes_extra else "")
    progress(f"{config.recipe}: {len(data.train)} training examples{extra} ({len(data.skipped_train)} longer than "
             f"{config.max_length} tokens skipped), {len(data.validation)} validation; {total} steps of "
             f"{config.batch_size}x{config.grad_accum} sequences (~{total / schedule.steps_per_epoch:.2f} epochs), "
             f"{sum(p.numel() for p in params):,} trainable parameters, {torch.get_num_threads()} threads")

    step, elapsed, tokens = 0, 0.0, 0
    if resume:
        meta = ckpt.load_checkpoint(output, model, optimizer, scheduler)
        step, elapsed, tokens = meta.step, meta.elapsed_s, meta.tokens
        log_path = ckpt.live_log(output)
        rows = _read_log(log_path, step)
        log_path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        progress(f"resumed from step {step}/{total} ({_fmt_duration(elapsed)} of training so far)")
    else:
        log_path = ckpt.live_log(output)
        log_path.write_text("")

    eval_every = config.eval_every or max(1, total // 4)
    stop_at = min(total, config.stop_after or total)
    first_step, session_train_s = step, 0.0

    def log(row: dict[str, Any]) -> None:
        with log_path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")

    def save() -> None:
        ckpt.save_checkpoint(output, model, optimizer, scheduler,
                             ckpt.CheckpointMeta(step=step, elapsed_s=elapsed, tokens=tokens,
                                                 config=config.resume_key()))

    with _StopRequest() as stop:
        while step < stop_at:
            t0 = time.monotonic()
            batches = [collate([data.train[i] for i in idx], data.pad_id) for idx in schedule.step(step)]
            weight = sum(b.target_weight for b in batches)
            targets = sum(b.target_tokens for b in batches)
            loss_sum = 0.0
            for batch in batches:
                loss = batch_loss(model, batch)
                (loss.weighted / weight).backward()  # weighted mean over the step's answer tokens
                loss_sum += loss.plain
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm))
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            dt = time.monotonic() - t0
            step_tokens = sum(b.tokens for b in batches)
            elapsed, tokens, session_train_s = elapsed + dt, tokens + step_tokens, session_train_s + dt
            row = {"step": step, "epoch": round(schedule.epoch_at(step), 4), "loss": round(loss_sum / targets, 5),
                   "lr": lr, "grad_norm": round(grad_norm, 4), "tokens": step_tokens,
                   "tokens_per_s": round(step_tokens / dt, 1), "step_s": round(dt, 3), "elapsed_s": round(elapsed, 1)}
            log(row)
            if step % config.log_every == 0 or step == stop_at:
                eta = session_train_s / (step - first_step) * (total - step)
                progress(f"step {step}/{total} loss {row['loss']:.4f} lr {lr:.2e} | {row['tokens_per_s']:.0f} tok/s "
                         f"{dt:.1f} s/step | elapsed {_fmt_duration(elapsed)} eta {_fmt_duration(eta)}")
            if step % eval_every == 0 and step < total and data.validation:
                val = validation_loss(model, data.validation, data.pad_id, config.batch_size)
                val_loss = val.pop("loss")
                log({"step": step, "val_loss": round(val_loss, 5), **{k: round(v, 4) for k, v in val.items()}})
                progress(f"step {step}/{total} validation loss {val_loss:.4f} "
                         + " ".join(f"{k} {v:.3f}" for k, v in val.items()))
            if stop.requested or step == stop_at < total or (step % config.checkpoint_every == 0 and step < total):
                save()
            if stop.requested:
                progress(f"interrupted at step {step}/{total}; checkpoint in {ckpt.checkpoint_dir(output)}")
                return TrainingResult("interrupted", step, total, output)
    if step < total:
        progress(f"stopped at step {step}/{total} as asked; continue with --resume")
        return TrainingResult("stopped", step, total, output)

    shutil.copy2(log_path, output / LOG_FILE)
    metrics = _finish(config, model, data, output, model_dir, train_file, validation_file,
                      total, elapsed, tokens, time.monotonic() - started, progress)
    return TrainingResult("finished", step, total, output, metrics)


def _config_diff(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    return [f"{key}: checkpoint {saved.get(key)!r}, now {current.get(key)!r}"
            for key in sorted(set(saved) | set(current)) if saved.get(key) != current.get(key)]


def _finish(config: TrainingConfig, model: Any, data: RunData, output: Path, model_dir: Path, train_file: Path,
            validation_file: Path, total: int, train_s: float, tokens: int, wall_s: float,
            progress: Progress) -> dict[str, Any]:
    from service.training.evaluate import evaluate
    from service.training.export import save_adapter, validate_for_registry
    from service.training.model_card import RunSummary, write_model_card

    save_adapter(model, output, config.save_dtype)
    registry = validate_for_registry(output, model_dir)
    progress(f"adapter saved to {output} ({registry['adapter_bytes'] / 2**20:.1f} MiB, passes registry validation)")
    t0 = time.monotonic()
    metrics = evaluate(config, model, data.tokenizer, data.validation, data.pad_id, data.eos_id, progress)
    eval_s = time.monotonic() - t0
    summary = RunSummary(
        config=config, model_dir=model_dir, train_file=train_file, validation_file=validation_file,
        train_examples=len(data.train), skipped_train=len(data.skipped_train),
        validation_examples=len(data.validation), skipped_validation=len(data.skipped_validation),
        steps=total, tokens=tokens, training_s=train_s, evaluation_s=eval_s, wall_s=wall_s, threads=torch.get_num_threads(),
        machine=f"{platform.machine()}, {os.cpu_count()} cores ({_cpu_name()}), {platform.system()} "
                f"{platform.release()}, Python {platform.python_version()}, torch {torch.__version__}",
        metrics=metrics, adapter=registry, log=_read_log(output / LOG_FILE, total),
    )
    write_model_card(output, summary)
    ckpt.remove_checkpoint(output)
    progress("validation: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                        for k, v in metrics.items() if not isinstance(v, (dict, list))))
    progress(f"done in {_fmt_duration(wall_s + eval_s)}: {output}")
    return metrics


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
