"""Deterministic, seeded generators of training and validation data for loragate's LoRA adapters.

- `adapters.recipes.ticket_triage`: labelled support tickets for the triage adapter.
- `adapters.recipes.brand_voice`: customer messages and brand-voice replies.

The generators are code; what they draw from (situations, phrases, the brand's store and topics) is
data in `tables/` (YAML, one record per situation or topic). The generated JSON-lines files live in
`adapters/data/`; `triage_handwritten.jsonl` and `triage_handwritten_blind.jsonl` there are
hand-written held-out sets that must never be used for training.
"""
