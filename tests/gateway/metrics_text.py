"""Read the gateway's Prometheus text (GET /metrics) with prometheus_client's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def sample_values(text: str) -> dict[str, float]:
    """Every sample of a /metrics page by its exposition name, e.g. ``gateway_worker_lanes{worker="asr"}``."""
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{key}="{value}"' for key, value in sample.labels.items())
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return values
