"""The plain server issue 2 names as the bar to beat, measured on the machine at hand: wait for 500 ms of
silence, then decode the utterance alone with faster-whisper's ``transcribe`` (beam 5, no partials).

It segments with the pipeline's own tracker (same Silero VAD, same thresholds, same pre-roll), so the
two differ only in how and when they decode. Audio is fed in real time, 100 ms at a time, and one
worker thread decodes utterance after utterance, as a one-model server would.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np

from gateway.client import frames_of, send_paced
from pipeline import resolve_whisper_model
from pipeline.segmenter import ActionKind, StreamingConfig, UtteranceTracker
from pipeline.vad import SileroVadModel, VadStream

from .metrics import percentiles
from .pipeline_bench import final_delays, load_recording
from .wer import wer

_CHUNK = 1600  # 100 ms at 16 kHz


async def _serve(whisper, audio: np.ndarray,
                 language: str) -> tuple[list[tuple[float, float, float, str]], list[float], float]:
    """(wall time, start, end, text) per final, each 100 ms frame's feed time, and decode seconds."""
    tracker = UtteranceTracker(VadStream(SileroVadModel()), StreamingConfig())
    pending: asyncio.Queue[tuple[float, float, np.ndarray] | None] = asyncio.Queue(maxsize=64)
    finals: list[tuple[float, float, float, str]] = []
    busy = 0.0

    def transcribe(utterance: np.ndarray) -> str:
        segments, _ = whisper.transcribe(utterance, language=language, beam_size=5)
        return " ".join(s.text.strip() for s in segments)

    async def decode() -> None:
        nonlocal busy
        while (item := await pending.get()) is not None:
            start, end, utterance = item
            began = time.perf_counter()
            text = await asyncio.to_thread(transcribe, utterance)
            busy += time.perf_counter() - began
            finals.append((time.monotonic(), start, end, text))

    candidate: np.ndarray | None = None

    async def carry_out(actions: list) -> None:
        nonlocal candidate
        for action in actions:
            if action.kind is ActionKind.CANDIDATE:
                candidate = action.alone()[0]
            elif action.kind is ActionKind.FINALIZE and candidate is not None:
                await pending.put((action.start, action.end, candidate))

    async def feed(frame: np.ndarray) -> None:
        await carry_out(await asyncio.to_thread(tracker.push, frame))

    decoder = asyncio.create_task(decode())
    fed: list[float] = []
    await send_paced(frames_of(audio, _CHUNK), feed, fed)
    await carry_out(tracker.flush())
    await pending.put(None)
    await decoder
    return finals, fed, busy


def run(path: Path, model: str, seconds: float | None = None, language: str = "en") -> dict[str, Any]:
    """The plain server's WER and utterance end → final delay on one recording with its utterance JSON."""
    from faster_whisper import WhisperModel

    audio, utterances = load_recording(path, seconds)
    whisper = WhisperModel(str(resolve_whisper_model(model)), device="cpu", compute_type="int8")
    finals, fed, busy = asyncio.run(_serve(whisper, audio, language))
    return {
        "model": model, "audio_seconds": audio.size / 16000,
        "wer": wer(" ".join(u["text"] for u in utterances), " ".join(f[3] for f in finals)),
        "compute_per_audio_second": busy / (audio.size / 16000),
        "final_delay": percentiles(final_delays(utterances, finals, fed)),
    }
