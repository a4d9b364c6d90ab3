"""loragate: serve one base model with many hot-swappable LoRA adapters through vLLM."""

__version__ = "0.1.0"
