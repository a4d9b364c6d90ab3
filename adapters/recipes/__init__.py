"""Deterministic, seeded generators of training and validation data for loragate's LoRA adapters.

- `adapters.recipes.ticket_triage`: labelled support tickets for the triage adapter.
- `adapters.recipes.brand_voice`: customer messages and brand-voice replies.

The generated JSON-lines files live in `adapters/recipes/data/`; `triage_handwritten.jsonl` there is
a hand-written held-out validation set that must never be used for training.
"""
