"""Tests for `loragate train`: data formatting, batching and the shared-prefix forward."""
