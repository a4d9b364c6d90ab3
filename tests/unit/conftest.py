"""Shared unit-test fixtures: a tiny Llama base model folder and real PEFT adapters made for it.

The same tiny model as tests/unit/adapters/test_validation.py (2 layers, hidden 64), so no model
cache is needed. Only `config.json` is written: the registry reads the base model's shape, never
its weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def tiny_llama_model(seed: int = 0) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(num_hidden_layers=2, vocab_size=256, tie_word_embeddings=True, hidden_size=64,
                         intermediate_size=128, num_attention_heads=4, num_key_value_heads=2)
    return LlamaForCausalLM(config)


def tiny_peft_adapter(dest: Path, seed: int, **lora: Any) -> Path:
    """A real PEFT adapter for the tiny Llama; `seed` makes its weights (and sha256) distinct."""
    import torch
    from peft import LoraConfig, get_peft_model

    model = tiny_llama_model()
    torch.manual_seed(seed)
    options = {"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"], "init_lora_weights": False, **lora}
    get_peft_model(model, LoraConfig(**options)).save_pretrained(str(dest))
    return dest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-llama")
    tiny_llama_model().config.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def adapter_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The allowed root holding valid adapters `one`, `two`, `three` (distinct weights)."""
    root = tmp_path_factory.mktemp("adapter-root")
    for seed, name in enumerate(("one", "two", "three"), start=1):
        tiny_peft_adapter(root / name, seed=seed)
    return root


@pytest.fixture()
def anyio_backend() -> str:
    """Async tests (`pytest.mark.anyio`) run on asyncio, as the service does."""
    return "asyncio"
