"""Read values from the service's /metrics with prometheus-client's own parser."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def scrape(client: httpx.Client) -> list[tuple[str, dict[str, str], float]]:
    response = client.get("/metrics")
    response.raise_for_status()
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    ]


def scrape_value(client: httpx.Client, name: str, labels: dict[str, str] | None = None) -> float:
    """Sum of the samples called `name` whose labels include `labels` (0 when there are none)."""
    labels = labels or {}
    return sum(
        value for sample, sample_labels, value in scrape(client)
        if sample == name and all(sample_labels.get(k) == v for k, v in labels.items())
    )
