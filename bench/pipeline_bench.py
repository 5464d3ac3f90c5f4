"""In-process micro-benchmark of the pipeline alone (no network): offline RTF, streaming compute per
second of audio, and utterance end → final event delay when audio is fed in real time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np

from gateway.client import frames_of, send_paced
from pipeline import EngineConfig, Engines, Session, SessionConfig, TranscriptEvent

from .loadgen import recording_span
from .metrics import frame_time, percentiles
from .offline import load_audio, offline_transcribe, to_pcm16
from .wer import wer

_FRAME_SECONDS = 0.1
_FRAME_BYTES = 3200  # 100 ms of 16 kHz pcm_s16le


async def _stream(engines: Engines, pcm: bytes, realtime: bool, targets: tuple[str, ...] = ("pt",),
                  source_language: str = "en") -> tuple[list[tuple[float, TranscriptEvent]], list[float]]:
    """The final transcripts with their arrival times, and each 100 ms frame's feed time."""
    session = Session(engines, SessionConfig(source_language=source_language, targets=targets))
    fed: list[float] = []

    async def feed() -> None:
        await send_paced(frames_of(pcm, _FRAME_BYTES), session.feed_audio, fed, realtime, _FRAME_SECONDS)
        await session.stop()

    feeder = asyncio.create_task(feed())
    finals = [(time.monotonic(), e) async for e in session.events() if isinstance(e, TranscriptEvent) and e.final]
    await feeder
    await session.aclose()
    return finals, fed


async def stream_finals(engines: Engines, audio: np.ndarray) -> list[TranscriptEvent]:
    """Final transcripts of ``audio`` (16 kHz float32) fed as fast as the session takes it."""
    finals, _ = await _stream(engines, to_pcm16(audio), realtime=False, targets=())
    return [event for _, event in finals]


def final_delays(utterances: list[dict[str, Any]], finals: list[tuple[float, float, float, str]],
                 fed: list[float], frame_seconds: float = _FRAME_SECONDS) -> list[float]:
    """Per reference utterance, seconds from its end to the last final with text that overlaps it;
    ``finals`` are (monotonic time, start, end, text), ``fed`` each frame's feed time. An end counts from
    the feed of the frame that completes it, as the WSS bench counts from its send (``metrics.frame_time``)."""
    delays = []
    for u in utterances:
        covering = [at for at, start, end, text in finals if start < u["end"] and end > u["start"] and text]
        if covering:
            delays.append(max(covering) - frame_time(fed, frame_seconds, u["end"]))
    return delays


def load_recording(path: Path, seconds: float | None) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """16 kHz audio of a recording with its utterance JSON beside it, cut to about ``seconds`` between
    utterances, and the utterances it holds."""
    audio = load_audio(path)
    end, utterances = recording_span(path, seconds, audio.size / 16000)
    if not utterances:
        raise FileNotFoundError(f"{path.with_suffix('.json')}: no utterances to measure against")
    return audio[: int(end * 16000)], utterances


def run(path: Path, model: str, seconds: float | None, source_language: str = "en",
        engine: str = "auto") -> dict[str, Any]:
    """All three figures for one recording with its utterance JSON beside it (the sessions declare
    ``source_language``; ``auto`` adds a language detection in front of each final; ``engine`` is the
    ASR engine)."""
    audio, utterances = load_recording(path, seconds)
    reference = " ".join(u["text"] for u in utterances)
    offline = offline_transcribe(model, audio)
    engines = Engines.load(EngineConfig(asr_model=model, asr_engine=engine))
    pcm = to_pcm16(audio)
    try:
        busy0 = engines.asr_worker.busy_seconds
        finals, _ = asyncio.run(_stream(engines, pcm, realtime=False, source_language=source_language))
        compute = engines.asr_worker.busy_seconds - busy0
        stream_wer = wer(reference, " ".join(e.text for _, e in finals))
        paced, fed = asyncio.run(_stream(engines, pcm, realtime=True, source_language=source_language))
    finally:
        engines.close()
    delays = final_delays(utterances, [(at, e.start, e.end, e.text) for at, e in paced], fed)
    return {
        "model": model, "engine": engines.asr.describe(), "source_language": source_language,
        "audio_seconds": audio.size / 16000,
        "languages": sorted({e.language for _, e in finals}),
        "offline_rtf": offline.rtf, "offline_wer": wer(reference, offline.text),
        "streaming_compute_per_audio_second": compute / (audio.size / 16000), "streaming_wer": stream_wer,
        "final_delay": percentiles(delays),
    }
