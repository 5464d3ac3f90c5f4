"""Speech recognition engines behind one small interface.

An engine is loaded once per process and shared by all sessions; it is never mutated after load. Per
request values (language, task, prefix, window) travel in ``DecodeOptions``.

``FasterWhisperEngine`` drives CTranslate2's Whisper directly (encode, detect language, generate)
rather than through ``WhisperModel.transcribe``: streaming needs per-request control that ``transcribe``
does not give, above all a *fitted encoder window*. Whisper's encoder normally always sees 30 s; for a
partial hypothesis of a few seconds of speech, encoding just the audio plus a margin is 5-8× cheaper
on CPU, and the final decode can still use the full window.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Protocol

import numpy as np

SAMPLE_RATE = 16_000
_FULL_WINDOW_FRAMES = 3000  # 30 s of 10 ms mel frames
_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True)
class DecodeOptions:
    """How to decode one piece of audio."""

    language: str | None = None  # None: detect
    task: str = "transcribe"  # or "translate" (any language → English)
    beam_size: int = 1
    prefix: str | None = None  # text the hypothesis must start with (committed words)
    context: str | None = None  # earlier final text of the stream, given as Whisper's previous-text prompt
    temperature_fallback: bool = False  # retry at higher temperatures when decoding fails
    full_window: bool = True  # False: encode only the audio plus a margin (cheaper, for partials)


@dataclass(frozen=True)
class DecodeResult:
    text: str  # the prefix and what followed it
    language: str
    language_probability: float
    continuation: str = ""  # what Whisper added after the prefix


class AsrEngine(Protocol):
    """A loaded speech recogniser; ``decode`` is called from worker threads."""

    name: str
    multilingual: bool

    def decode(self, audio: np.ndarray, options: DecodeOptions) -> DecodeResult: ...

    def detect_language(self, audio: np.ndarray) -> tuple[str, float]: ...

    def supports_language(self, code: str) -> bool: ...


def _compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / max(1, len(zlib.compress(data)))


class FasterWhisperEngine:
    """Whisper through CTranslate2 (CPU, or CUDA 12 GPUs), with faster-whisper's features and tokenizer."""

    def __init__(
        self,
        model_path: str,
        name: str,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 0,
        no_speech_threshold: float = 0.6,
        window_margin_s: float = 1.0,
    ) -> None:
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import _LANGUAGE_CODES, Tokenizer

        device_type, _, index = device.partition(":")
        whisper = WhisperModel(
            model_path, device=device_type, device_index=int(index or 0),
            compute_type=compute_type, cpu_threads=cpu_threads,
        )
        self.name = name
        self._model = whisper.model
        self._features = whisper.feature_extractor
        self._hf_tokenizer = whisper.hf_tokenizer
        self._tokenizer_cls = Tokenizer
        self.multilingual = bool(self._model.is_multilingual)
        self._languages = frozenset(_LANGUAGE_CODES) if self.multilingual else frozenset({"en"})
        self._no_speech_threshold = no_speech_threshold
        self._margin_frames = int(window_margin_s * 100)
        self._max_length = whisper.max_length

    def supports_language(self, code: str) -> bool:
        return code in self._languages

    def detect_language(self, audio: np.ndarray) -> tuple[str, float]:
        """Most likely spoken language of ``audio`` and its probability (full 30 s window)."""
        return self._language(self._encode(audio, full_window=True), None)

    def _encode(self, audio: np.ndarray, full_window: bool):
        import ctranslate2

        features = self._window(self._features(audio), full_window)
        return self._model.encode(ctranslate2.StorageView.from_array(features[None]), to_cpu=False)

    def decode(self, audio: np.ndarray, options: DecodeOptions) -> DecodeResult:
        """Decode 16 kHz mono float32 ``audio``; output Whisper marks as no speech is dropped."""
        encoded = self._encode(audio, options.full_window)
        language, probability = self._language(encoded, options.language)
        tokenizer = self._tokenizer_cls(
            self._hf_tokenizer, self.multilingual,
            task=options.task if self.multilingual else "transcribe", language=language,
        )
        prefix = (options.prefix or "").strip()
        prefix_tokens = tokenizer.encode(" " + prefix) if prefix else []
        prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        if options.context:
            # Half of Whisper's 448-token context at most, as in openai-whisper's decoding.
            prompt = [tokenizer.sot_prev, *tokenizer.encode(" " + options.context.strip())[-(self._max_length // 2 - 1):], *prompt]
        prompt += prefix_tokens
        max_new = int(16 + 12 * audio.size / SAMPLE_RATE)  # runaway loops stop here
        max_length = min(self._max_length, len(prompt) + max_new)
        tokens, avg_logprob, no_speech = self._generate(encoded, prompt, max_length, tokenizer, options)
        # CTranslate2 returns the forced prefix tokens at the start of the sequence.
        if tokens[: len(prefix_tokens)] == prefix_tokens:
            tokens = tokens[len(prefix_tokens):]
        continuation = " ".join(tokenizer.decode(tokens).split())
        if no_speech > self._no_speech_threshold and avg_logprob < -1.0:
            continuation = ""
        return DecodeResult(
            text=f"{prefix} {continuation}".strip(), language=language,
            language_probability=probability, continuation=continuation,
        )

    def _window(self, features: np.ndarray, full: bool) -> np.ndarray:
        frames = features.shape[-1]
        target = _FULL_WINDOW_FRAMES if full else min(
            _FULL_WINDOW_FRAMES, 100 * math.ceil((frames + self._margin_frames) / 100)
        )
        if frames >= target:
            return np.ascontiguousarray(features[:, :target], dtype=np.float32)
        out = np.zeros((features.shape[0], target), np.float32)
        out[:, :frames] = features
        return out

    def _language(self, encoded, requested: str | None) -> tuple[str, float]:
        if requested is not None or not self.multilingual:
            return (requested or "en"), 1.0
        token, probability = self._model.detect_language(encoded)[0][0]
        return token[2:-2], float(probability)

    def _generate(self, encoded, prompt: list[int], max_length: int, tokenizer, options: DecodeOptions):
        temperatures = _TEMPERATURES if options.temperature_fallback else _TEMPERATURES[:1]
        best = None
        for temperature in temperatures:
            kwargs = (
                {"beam_size": options.beam_size}
                if temperature == 0
                else {"beam_size": 1, "sampling_topk": 0, "sampling_temperature": temperature}
            )
            result = self._model.generate(
                encoded, [prompt], max_length=max_length, return_scores=True,
                return_no_speech_prob=True, suppress_blank=True, suppress_tokens=[-1], **kwargs,
            )[0]
            tokens = result.sequences_ids[0]
            avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
            candidate = (tokens, avg_logprob, result.no_speech_prob)
            if best is None or avg_logprob > best[1]:
                best = candidate
            too_repetitive = _compression_ratio(tokenizer.decode(tokens)) > 2.4
            silence = result.no_speech_prob > self._no_speech_threshold
            if silence or (not too_repetitive and avg_logprob >= -1.0):
                return candidate
        return best
