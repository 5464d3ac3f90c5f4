"""In-process micro-benchmark of the pipeline alone (no network): offline RTF, streaming compute per
second of audio, and utterance end → final event delay when audio is fed in real time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import EngineConfig, Engines, Session, SessionConfig, TranscriptEvent

from .loadgen import recording_span
from .metrics import percentiles
from .offline import load_audio, offline_transcribe, to_pcm16
from .wer import wer


async def _stream(engines: Engines, pcm: bytes, realtime: bool, targets: tuple[str, ...] = ("pt",),
                  source_language: str = "en") -> tuple[list[tuple[float, TranscriptEvent]], float]:
    session = Session(engines, SessionConfig(source_language=source_language, targets=targets))
    started = time.monotonic()

    async def feed() -> None:
        for i, offset in enumerate(range(0, len(pcm), 3200)):
            if realtime:
                await asyncio.sleep(max(0.0, started + i * 0.1 - time.monotonic()))
            await session.feed_audio(pcm[offset : offset + 3200])
        await session.stop()

    feeder = asyncio.create_task(feed())
    finals = [(time.monotonic(), e) async for e in session.events() if isinstance(e, TranscriptEvent) and e.final]
    await feeder
    await session.aclose()
    return finals, started


async def stream_finals(engines: Engines, audio: np.ndarray) -> list[TranscriptEvent]:
    """Final transcripts of ``audio`` (16 kHz float32) fed as fast as the session takes it."""
    finals, _ = await _stream(engines, to_pcm16(audio), realtime=False, targets=())
    return [event for _, event in finals]


def final_delays(utterances: list[dict[str, Any]], finals: list[tuple[float, float, float, str]],
                 started: float) -> list[float]:
    """Per reference utterance, seconds from its end to the last final with text that overlaps it;
    ``finals`` are (monotonic time, start, end, text), audio fed in real time from ``started`` in 100 ms
    frames, frame i at ``started + i * 0.1``. An end counts from the end of the frame holding it, when a
    live microphone would have it: 0.1 s after that frame was fed, so these delays read up to 0.1 s lower
    than the WSS bench's, which counts from the frame's send time (``metrics.frame_sent_at``)."""
    delays = []
    for u in utterances:
        covering = [at for at, start, end, text in finals if start < u["end"] and end > u["start"] and text]
        if covering:
            delays.append(max(covering) - (started + np.ceil(u["end"] * 10 - 1e-6) / 10))
    return delays


def load_recording(path: Path, seconds: float | None) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """16 kHz audio of a recording with its utterance JSON beside it, cut to about ``seconds`` between
    utterances, and the utterances it holds."""
    audio = load_audio(path)
    end, utterances = recording_span(path, seconds, audio.size / 16000)
    if not utterances:
        raise FileNotFoundError(f"{path.with_suffix('.json')}: no utterances to measure against")
    return audio[: int(end * 16000)], utterances


def run(path: Path, model: str, seconds: float | None, source_language: str = "en") -> dict[str, Any]:
    """All three figures for one recording with its utterance JSON beside it (the sessions declare
    ``source_language``; ``auto`` adds a language detection in front of each final)."""
    audio, utterances = load_recording(path, seconds)
    reference = " ".join(u["text"] for u in utterances)
    offline = offline_transcribe(model, audio)
    engines = Engines.load(EngineConfig(asr_model=model))
    pcm = to_pcm16(audio)
    try:
        busy0 = engines.asr_worker.busy_seconds
        finals, _ = asyncio.run(_stream(engines, pcm, realtime=False, source_language=source_language))
        compute = engines.asr_worker.busy_seconds - busy0
        stream_wer = wer(reference, " ".join(e.text for _, e in finals))
        paced, started = asyncio.run(_stream(engines, pcm, realtime=True, source_language=source_language))
    finally:
        engines.close()
    delays = final_delays(utterances, [(at, e.start, e.end, e.text) for at, e in paced], started)
    return {
        "model": model, "source_language": source_language, "audio_seconds": audio.size / 16000,
        "languages": sorted({e.language for _, e in finals}),
        "offline_rtf": offline.rtf, "offline_wer": wer(reference, offline.text),
        "streaming_compute_per_audio_second": compute / (audio.size / 16000), "streaming_wer": stream_wer,
        "final_delay": percentiles(delays),
    }
