"""The served base model's dimensions, which every LoRA tensor shape must agree with."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, Field

ATTENTION_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_MODULES = ("gate_proj", "up_proj", "down_proj")
SUPPORTED_MODULES = ATTENTION_MODULES + MLP_MODULES
# PEFT can target these, but the served engine is not configured for embedding/lm_head LoRA.
UNSUPPORTED_MODULES = ("embed_tokens", "lm_head")


class BaseModelShape(BaseModel):
    """The dimensions of a Llama-style base model that LoRA weights must agree with."""

    hidden_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    num_attention_heads: int = Field(gt=0)
    num_key_value_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    num_hidden_layers: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    tie_word_embeddings: bool = False

    @classmethod
    def from_model_dir(cls, model_dir: Path) -> BaseModelShape:
        """Read `config.json` of a Hugging Face model folder. Raises ValueError if it is unusable
        (a server misconfiguration, not a client error)."""
        config_path = Path(model_dir) / "config.json"
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read base model config {config_path}: {exc}") from exc
        if not isinstance(config, dict):
            raise ValueError(f"base model config {config_path} is not a JSON object")
        try:
            hidden = config["hidden_size"]
            heads = config["num_attention_heads"]
            head_dim = config.get("head_dim") or (hidden // heads if isinstance(hidden, int) and heads else None)
            return cls(
                hidden_size=hidden,
                intermediate_size=config["intermediate_size"],
                num_attention_heads=heads,
                # Absent in older configs: plain multi-head attention.
                num_key_value_heads=config.get("num_key_value_heads") or heads,
                head_dim=head_dim,
                num_hidden_layers=config["num_hidden_layers"],
                vocab_size=config["vocab_size"],
                tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            )
        except KeyError as exc:
            raise ValueError(f"base model config {config_path} lacks {exc.args[0]!r}") from exc
        except ValueError as exc:  # pydantic.ValidationError is a ValueError
            raise ValueError(f"base model config {config_path} is invalid: {exc}") from exc

    @property
    def modules(self) -> dict[str, tuple[int, int]]:
        """LoRA-targetable module -> (in_features, out_features) of its nn.Linear."""
        q_out = self.num_attention_heads * self.head_dim
        kv_out = self.num_key_value_heads * self.head_dim
        return {
            "q_proj": (self.hidden_size, q_out),
            "k_proj": (self.hidden_size, kv_out),
            "v_proj": (self.hidden_size, kv_out),
            "o_proj": (q_out, self.hidden_size),
            "gate_proj": (self.hidden_size, self.intermediate_size),
            "up_proj": (self.hidden_size, self.intermediate_size),
            "down_proj": (self.intermediate_size, self.hidden_size),
        }

    @staticmethod
    def parent_of(module: str) -> str:
        return "self_attn" if module in ATTENTION_MODULES else "mlp"

    def module_names(self) -> list[tuple[str, str | None]]:
        """Every full module name PEFT would see, paired with its short name (None: unsupported)."""
        names: list[tuple[str, str | None]] = [("model.embed_tokens", None), ("lm_head", None)]
        for layer in range(self.num_hidden_layers):
            for module in SUPPORTED_MODULES:
                names.append((f"model.layers.{layer}.{self.parent_of(module)}.{module}", module))
        return names
