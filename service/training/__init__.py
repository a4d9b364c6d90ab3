"""Fine-tuning LoRA adapters of the base model from the recipes in `adapters/recipes/`."""
