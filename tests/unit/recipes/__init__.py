"""Tests for the adapter data recipes."""
