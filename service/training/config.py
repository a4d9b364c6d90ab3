"""Training hyperparameters: `TrainingConfig` (every option of one run, recorded in the checkpoint
and the model card) and one subclass per recipe whose defaults are the shipped run; `config_for`
builds a recipe's config with command-line overrides.

Why the shipped defaults are what they are (the experiments behind each value, sized so a run
takes under an hour on the 2-core build machines): adapters/evaluation/README.md.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

RecipeName = Literal["ticket-triage", "brand-voice"]

# The modules the serving engine applies LoRA to (the registry refuses anything else).
ATTENTION_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_MODULES = ("gate_proj", "up_proj", "down_proj")
SUPPORTED_MODULES = ATTENTION_MODULES + MLP_MODULES

# Fields that may change between an interrupted run and its `--resume` without changing what is
# trained; any other difference would silently mix two different runs.
RESUMABLE_CHANGES = frozenset({"threads", "log_every", "checkpoint_every", "stop_after"})


class TrainingConfig(BaseModel):
    """Everything one training run depends on (recorded in the checkpoint and the model card)."""

    model_config = ConfigDict(extra="forbid")

    recipe: RecipeName
    # LoRA. q/k/v/o only by default: on the CPU engine each adapted module costs serving time
    # (LoRA ops dominate a LoRA request), and attention-only adapters learn these formats well.
    rank: int = Field(16, ge=1, le=64, description="LoRA rank r (the registry accepts <= 64).")
    alpha: float = Field(32.0, gt=0, description="LoRA alpha (scale = alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout.")
    target_modules: list[str] = Field(default_factory=lambda: list(ATTENTION_MODULES))
    # Optimisation
    epochs: float = Field(1.0, gt=0, description="Passes over the training set (fractions allowed).")
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps; overrides epochs.")
    learning_rate: float = Field(3e-4, gt=0)
    schedule: Literal["cosine", "linear"] = "cosine"
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of the steps with a linear warmup.")
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    class_token_weight: float = Field(
        1.0, ge=1, description="Loss weight of the category value tokens, and of the priority's unless "
                               "priority_token_weight is set (ticket-triage).",
    )
    priority_token_weight: float | None = Field(
        None, ge=1, description="Loss weight of the priority value tokens (ticket-triage; default: the class "
                                "token weight).",
    )
    quote_token_weight: float = Field(
        1.0, ge=1, description="Loss weight of the quote marks around a phrase the answer restates from the "
                               "ticket (ticket-triage: single quotes where the ticket has double quotes).",
    )
    balance_labels: bool = Field(
        False, description="Scale the category and priority value tokens' loss weight by inverse label "
                            "frequency in the training data (ticket-triage).",
    )
    batch_size: int = Field(8, ge=1, description="Sequences per forward pass.")
    grad_accum: int = Field(1, ge=1, description="Forward passes per optimizer step.")
    max_length: int = Field(768, ge=16, description="Longer examples (prompt + answer) are skipped.")
    # Data
    train_limit: int | None = Field(None, ge=1, description="Use only the first N training examples.")
    extra_train_file: str | None = Field(
        None, description="More labelled examples mixed into the training data, e.g. a team's own tickets "
                          "(JSON lines with the recipe's fields; a relative path is from the project root).",
    )
    extra_train_repeat: int = Field(
        1, ge=0, description="How many times each extra example joins the training pool (0: not at all).",
    )
    validation_limit: int = Field(60, ge=1, description="Validation examples (loss and generation).")
    generation_limit: int | None = Field(
        None, ge=0, description="Validation examples answered by generation (default: all of them)."
    )
    seed: int = 0
    # Evaluation and bookkeeping
    eval_every: int = Field(0, ge=0, description="Validation loss every N steps (0: 4 times a run).")
    max_new_tokens: int = Field(120, ge=1, description="Token budget of a validation answer.")
    checkpoint_every: int = Field(20, ge=1, description="Steps between checkpoints.")
    log_every: int = Field(1, ge=1)
    threads: int | None = Field(None, ge=1, description="torch threads (default: all cores).")
    stop_after: int | None = Field(
        None, ge=1, description="Checkpoint and exit after this many steps (continue with --resume)."
    )
    # bf16 halves the file; the served model runs in bf16 anyway.
    save_dtype: Literal["bfloat16", "float32"] = "bfloat16"

    @field_validator("target_modules")
    @classmethod
    def _known_modules(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(SUPPORTED_MODULES))
        if unknown or not value:
            raise ValueError(f"target modules must be among {', '.join(SUPPORTED_MODULES)}; got {value}")
        return sorted(set(value), key=SUPPORTED_MODULES.index)

    @model_validator(mode="after")
    def _stop_before_end(self) -> TrainingConfig:
        if self.stop_after is not None and self.max_steps is not None and self.stop_after > self.max_steps:
            raise ValueError("stop_after must not exceed max_steps")
        return self

    @property
    def mixes_extra(self) -> bool:
        """Whether extra labelled examples join the training pool."""
        return bool(self.extra_train_file and self.extra_train_repeat)

    @property
    def priority_weight(self) -> float:
        return self.priority_token_weight or self.class_token_weight

    def resume_key(self) -> dict:
        """The fields a resumed run must share with the run that wrote the checkpoint."""
        return self.model_dump(exclude=set(RESUMABLE_CHANGES))


class TicketTriageConfig(TrainingConfig):
    """ticket-triage (v7): 230 steps of 8 tickets (under one epoch) of the widened recipe (60
    situations in customers' words, 22% urgent); the category, priority and restated-quote tokens
    weigh 15x, 30x and 15x in the loss, label-balanced. v6 ran the same on the narrower recipe."""

    recipe: RecipeName = "ticket-triage"
    dropout: float = Field(0.1, ge=0, lt=1)
    learning_rate: float = Field(8e-4, gt=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(230, ge=1)
    batch_size: int = Field(8, ge=1)
    weight_decay: float = Field(0.01, ge=0)
    class_token_weight: float = Field(15.0, ge=1)
    priority_token_weight: float | None = Field(30.0, ge=1)
    quote_token_weight: float = Field(15.0, ge=1)
    balance_labels: bool = True
    max_length: int = Field(704, ge=16)  # the longest generated ticket is 685 tokens
    validation_limit: int = Field(60, ge=1)
    max_new_tokens: int = Field(160, ge=1)  # the longest answer is 119 tokens


class BrandVoiceConfig(TrainingConfig):
    """brand-voice (v2): the style (greeting, tone, sign-off) and the store's own answers: 225 steps
    of 8 (3 epochs) of the 600 pairs at 5e-4. v1's 60 steps (0.8 epoch) learnt the style but not the
    answers, and filled the gap with invented phone numbers and durations."""

    recipe: RecipeName = "brand-voice"
    dropout: float = Field(0.1, ge=0, lt=1)
    learning_rate: float = Field(5e-4, gt=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(225, ge=1)
    batch_size: int = Field(8, ge=1)
    weight_decay: float = Field(0.01, ge=0)
    max_length: int = Field(256, ge=16)  # the longest message + reply is 220 tokens
    validation_limit: int = Field(40, ge=1)
    generation_limit: int | None = Field(20, ge=0)
    max_new_tokens: int = Field(200, ge=1)  # the longest reply is 149 tokens


RECIPE_CONFIGS: dict[str, type[TrainingConfig]] = {
    "ticket-triage": TicketTriageConfig,
    "brand-voice": BrandVoiceConfig,
}


def config_for(recipe: str, **overrides: object) -> TrainingConfig:
    """The recipe's defaults with `overrides` (None values mean "keep the default")."""
    if recipe not in RECIPE_CONFIGS:
        raise ValueError(f"unknown recipe {recipe!r}; known: {', '.join(RECIPE_CONFIGS)}")
    given = {key: value for key, value in overrides.items() if value is not None}
    if "epochs" in given and "max_steps" not in given:
        given["max_steps"] = None  # an explicit epoch count replaces the recipe's step budget
    return RECIPE_CONFIGS[recipe](recipe=recipe, **given)
