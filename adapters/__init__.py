"""LoRA adapter recipes and their training data (see `adapters.recipes`)."""
