"""Evaluating served models and adapters through the HTTP API."""
