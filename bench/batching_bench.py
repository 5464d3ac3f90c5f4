"""Engine throughput by batch size: the same requests decoded one at a time and in batches.

    python -m bench batching --model base

Finals: each utterance of the recording with 0.2 s before and 0.3 s after it, full 30 s window, beam 5
with temperature fallback. Partials: the first 3 s of each utterance, fitted window, greedy. Requests
are cut into consecutive batches of 1, 2, 4 and 8 and decoded with ``decode_batch``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from pipeline.asr import DecodeOptions, DecodeRequest
from pipeline.engines import EngineConfig, load_asr_engine

from .offline import load_audio

RATE = 16_000


def run(recording: Path, model: str, engine: str = "auto", device: str = "cpu", requests: int = 16,
        sizes: tuple[int, ...] = (1, 2, 4, 8)) -> dict:
    """Requests per second of finals and partials for each batch size in ``sizes``."""
    audio = load_audio(recording)
    utterances = json.loads(recording.with_suffix(".json").read_text())["utterances"][:requests]
    asr, resolved = load_asr_engine(EngineConfig(asr_model=model, asr_engine=engine, device=device))

    def clip(start: float, end: float):
        return audio[int(max(0.0, start) * RATE): int(end * RATE)]

    kinds = {
        "final": [DecodeRequest(clip(u["start"] - 0.2, u["end"] + 0.3),
                                DecodeOptions(language="en", beam_size=5, temperature_fallback=True))
                  for u in utterances],
        "partial": [DecodeRequest(clip(u["start"] - 0.2, min(u["end"], u["start"] + 3.0)),
                                  DecodeOptions(language="en", beam_size=1, full_window=False))
                    for u in utterances],
    }
    asr.decode_batch(kinds["final"][:1])  # warm-up
    rows = []
    for kind, batch in kinds.items():
        for size in sizes:
            started = time.perf_counter()
            for first in range(0, len(batch), size):
                asr.decode_batch(batch[first: first + size])
            elapsed = time.perf_counter() - started
            rows.append({"kind": kind, "batch": size, "seconds": elapsed, "requests_per_s": len(batch) / elapsed})
            print(f"{model} {kind:7s} batch {size}: {len(batch) / elapsed:6.2f} requests/s ({elapsed:.2f} s)", flush=True)
    return {"model": model, "engine": asr.describe(), "device": str(resolved), "rows": rows}
