"""Offline reference: faster-whisper's own whole-file ``transcribe`` with the same model, and translation."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from faster_whisper import WhisperModel


@dataclass(frozen=True)
class OfflineResult:
    text: str
    seconds: float  # wall time of the transcription
    audio_seconds: float

    @property
    def rtf(self) -> float:
        return self.seconds / self.audio_seconds


def offline_transcribe(
    model: str, audio: np.ndarray, language: str | None = "en", beam_size: int = 5,
    device: str = "cpu", compute_type: str = "int8",
) -> OfflineResult:
    """Whole-file transcription with faster-whisper's defaults (30 s windows, previous-text conditioning)."""
    whisper = load_offline_model(model, device, compute_type)
    started = time.perf_counter()
    text = transcribe_text(whisper, audio, language, beam_size)
    return OfflineResult(text, time.perf_counter() - started, audio.size / 16000)


def load_offline_model(model: str, device: str = "cpu", compute_type: str = "int8") -> WhisperModel:
    """faster-whisper's own ``WhisperModel`` for a model name or path (packaged models resolve offline)."""
    from faster_whisper import WhisperModel

    from pipeline import resolve_whisper_model

    return WhisperModel(str(resolve_whisper_model(model)), device=device, compute_type=compute_type)


def transcribe_text(whisper: WhisperModel, audio: np.ndarray, language: str | None = "en",
                    beam_size: int = 5) -> str:
    """The text of ``WhisperModel.transcribe`` over all of ``audio``, its segments joined."""
    segments, _ = whisper.transcribe(audio, language=language, beam_size=beam_size)
    return " ".join(s.text.strip() for s in segments)


def to_pcm16(audio: np.ndarray) -> bytes:
    """16 kHz float32 → ``pcm_s16le`` bytes, what a client streams."""
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


def load_audio(path: Path | str) -> np.ndarray:
    """Any audio file → 16 kHz mono float32 (PyAV through faster-whisper)."""
    from faster_whisper import decode_audio

    return decode_audio(str(path), sampling_rate=16000)
