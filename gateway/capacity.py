"""Default session limit from measured capacity (``python -m bench sweep``), when --max-sessions is 0."""

from __future__ import annotations

from pipeline.devices import cuda_device_count, usable_cpus

# Real-time sessions per CPU core that keep p90 utterance-end → final latency ≤ 2 s, measured with
# `python -m bench sweep` on a 2-core x86-64 VM (README, "Performance"). Other models: a cautious guess.
SESSIONS_PER_CORE = {"tiny.en": 2.0, "base": 1.0}
UNMEASURED_PER_CORE = 0.5
# GPU capacity depends on the card; without a measurement, a conservative number of streams.
GPU_DEFAULT = 16


def default_max_sessions(model: str, device: str, cores: int | None = None) -> int:
    """How many concurrent sessions to admit when the operator did not say."""
    if device.startswith("cuda") or (device == "auto" and cuda_device_count() > 0):
        return GPU_DEFAULT
    per_core = SESSIONS_PER_CORE.get(model, UNMEASURED_PER_CORE)
    return max(1, int((cores or usable_cpus()) * per_core))

