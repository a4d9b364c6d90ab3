"""Task endpoints built on the generation service (triage, and later tasks)."""
