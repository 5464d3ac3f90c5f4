"""Streaming Silero VAD: speech probability per 32 ms window, with LSTM state kept across chunks.

The ONNX model (shipped inside faster-whisper) is loaded once and shared; each stream keeps its own
recurrent state, the 64-sample context and any samples short of a whole window. Windows are run one at
a time, so the probabilities do not depend on how the audio was chunked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

WINDOW = 512  # samples at 16 kHz = 32 ms
_CONTEXT = 64
_STATE_SHAPE = (1, 1, 128)


def default_vad_model_path() -> Path:
    """Path of the Silero VAD ONNX model that ships with faster-whisper."""
    from faster_whisper.utils import get_assets_path

    candidates = sorted(Path(get_assets_path()).glob("silero_vad*.onnx"))
    if not candidates:
        raise FileNotFoundError("faster-whisper ships no Silero VAD model; reinstall faster-whisper")
    return candidates[-1]


class SileroVadModel:
    """The shared ONNX session (thread-safe ``run``)."""

    def __init__(self, path: Path | None = None) -> None:
        import onnxruntime

        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 4
        self._session = onnxruntime.InferenceSession(
            str(path or default_vad_model_path()), providers=["CPUExecutionProvider"], sess_options=opts
        )

    def open_stream(self) -> "VadStream":
        """Per-session streaming state over this model."""
        return VadStream(self)

    def run_window(
        self, window: np.ndarray, h: np.ndarray, c: np.ndarray
    ) -> tuple[float, np.ndarray, np.ndarray]:
        prob, h, c = self._session.run(None, {"input": window[None, :], "h": h, "c": c})
        return float(prob[0]), h, c


@dataclass
class VadStream:
    """Speech probabilities for consecutive 512-sample windows of one audio stream."""

    model: SileroVadModel

    def __post_init__(self) -> None:
        self._h = np.zeros(_STATE_SHAPE, np.float32)
        self._c = np.zeros(_STATE_SHAPE, np.float32)
        self._context = np.zeros(_CONTEXT, np.float32)
        self._pending = np.zeros(0, np.float32)

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Probabilities for every whole window completed by ``samples`` (may be empty)."""
        buf = np.concatenate([self._pending, samples]) if self._pending.size else samples
        n = buf.size // WINDOW
        probs = np.empty(n, np.float32)
        for i in range(n):
            window = buf[i * WINDOW : (i + 1) * WINDOW]
            probs[i], self._h, self._c = self.model.run_window(
                np.concatenate([self._context, window]), self._h, self._c
            )
            self._context = window[-_CONTEXT:]
        self._pending = buf[n * WINDOW :].copy()
        return probs
