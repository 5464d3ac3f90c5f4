"""Whisper decoding for streaming, over interchangeable backends, one batch of requests at a time.

An engine is loaded once per process and shared by all sessions; it is never mutated after load. Per
request values (language, task, prefix, window) travel in ``DecodeOptions``. ``WhisperEngine`` holds
what does not depend on the runtime (features, windows, prompts, temperature fallback, the no-speech
filter); a ``WhisperBackend`` runs the network: ``whisper_ct2.CTranslate2Backend`` (faster-whisper's
runtime, CPU and CUDA 12) or ``whisper_torch.TorchWhisperBackend`` (transformers on any torch device).

Streaming needs per-request control that ``WhisperModel.transcribe`` does not give, above all a *fitted
encoder window*: Whisper's encoder normally always sees 30 s; for a partial hypothesis of a few
seconds of speech, encoding the audio plus a margin, 10 s at least, is several times cheaper on CPU, and
the final decode can still use the full window. In a batch, every request's window is padded to the longest one.
"""

from __future__ import annotations

import math
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

SAMPLE_RATE = 16_000
FULL_WINDOW_FRAMES = 3000  # 30 s of 10 ms mel frames
MAX_LENGTH = 448  # Whisper's decoder positions
_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
SAMPLING_SEED = 20_240_601  # backends seed the fallback's sampling with it: the same requests give the same text
TIMESTAMP_STEP_S = 0.02  # Whisper's timestamp tokens: <|0.00|>, <|0.02|> … <|30.00|>
LAST_TIMESTAMP_INDEX = 1500  # <|30.00|>
_OVERRUN_S = 1.0  # a segment may end this far past the audio (Whisper's end times run a little late)
# A decode cut short (a loop, text past the audio) whose kept text ends this close to the end of the audio
# lost at most a word fragment (a stream stopped mid-word): it stands, as a hotter retry would make up
# words for that fragment (seen: "…received. The press star for the first time." over 0.3 s of "The pur").
_FRAGMENT_S = 0.5
_MAX_COMPRESSION = 2.4  # Whisper's compression-ratio threshold: text that zlib shrinks more is a loop
_LOOP_REPEATS = 4  # a run of one n-gram (n ≤ _LOOP_PERIOD) this many times back to back is a decoding loop
_LOOP_PERIOD = 8
# A decode may add this many tokens plus as many per second of its audio as fast speech needs (speech has
# 2-4 per second): enough for any real text, and where a runaway loop stops.
TOKEN_SLACK = 16
MAX_TOKENS_PER_SECOND = 12.0
# A fitted window (partials, language detection) is the audio plus a margin but at least this long.
# Whisper is trained on 30 s windows and goes quiet in short ones: in a window of the audio plus 1 s, the
# first 0.7 s of 134 English and 100 Spanish clips came out empty for 57 and 43 of them, their first 1.7 s
# for 36 and 16; at least 10 s, for none and 1, with 1.6x and 2x the right words (base, greedy;
# docs/decisions.md). Language detection names 0.7-1.7 s prompts as well as in the 30 s window (3 of 45
# English ones went wrong fitted to the audio, none at 10 s). A 10 s window encodes 7x faster than 30 s.
MIN_FITTED_WINDOW_S = 10


def token_budget(seconds: float, per_second: float = MAX_TOKENS_PER_SECOND) -> int:
    """New tokens that ``seconds`` of audio may hold: ``TOKEN_SLACK`` plus ``per_second`` per second."""
    return int(TOKEN_SLACK + per_second * max(0.0, seconds))


@dataclass(frozen=True)
class TimedText:
    """Speech already transcribed inside the decoded audio: its text and where it lies (seconds)."""

    start: float
    end: float
    text: str

    def shifted(self, seconds: float) -> TimedText:
        """The same text, its times moved by ``seconds``."""
        return TimedText(self.start + seconds, self.end + seconds, self.text)


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
    # Earlier speech at the start of the audio, forced as a *timestamped* prefix: Whisper then knows which
    # audio that text covers and transcribes only what follows (decoding in timestamp mode).
    timed_prefix: tuple[TimedText, ...] = ()
    # At most this many tokens after the prompt (forced prefix and new ones): a partial only extends the
    # previous one, and a decode that loops at the end of the audio stops there instead of at the limit.
    max_tokens: int | None = None

    @property
    def timestamp_mode(self) -> bool:
        """Whether Whisper decodes with timestamps (no ``<|notimestamps|>``): so with a timed prefix."""
        return bool(self.timed_prefix)


@dataclass(frozen=True)
class DecodeRequest:
    audio: np.ndarray  # 16 kHz mono float32
    options: DecodeOptions


@dataclass(frozen=True)
class DecodeResult:
    text: str  # the prefix and what followed it
    language: str
    language_probability: float
    continuation: str = ""  # what Whisper added after the prefix
    speech_end: float | None = None  # timestamp mode: the end time Whisper gave its last segment (seconds)
    # Timestamp mode: the continuation as Whisper's segments, in seconds of the decoded audio (a last
    # segment left open ends at the end of the audio); empty when decoded without timestamps.
    segments: tuple[TimedText, ...] = ()
    tokens: int = 0  # the hypothesis in tokens: forced prefix and kept new ones (for ``max_tokens``)


@dataclass(frozen=True)
class Prompt:
    """Decoder prompt: ``[<|startofprev|> previous text] <|sot|> [lang task] <|notimestamps|> prefix``, or in
    timestamp mode ``… <|sot|> [lang task] <|t0|> text <|t1|> …`` (no ``<|notimestamps|>``)."""

    tokens: list[int]
    sot_index: int  # where <|startoftranscript|> is (Whisper's no-speech probability is read there)
    prefix_start: int  # where the forced prefix begins


@dataclass(frozen=True)
class Generation:
    tokens: list[int]  # the forced prefix, then the generated tokens (no end-of-text)
    avg_logprob: float
    no_speech_prob: float


class WhisperBackend(Protocol):
    """The network itself. ``encoded`` is whatever ``encode`` returns, for a batch; ``rows`` pick from it.
    ``generate``'s ``max_length`` bounds the whole decoder sequence: prompt, forced prefix and new tokens."""

    kind: str  # runtime name for humans, e.g. "CTranslate2" or "transformers"
    device: str
    multilingual: bool
    n_mels: int
    lanes: int  # calls that may run at once, from as many threads

    def encode(self, features: np.ndarray) -> Any: ...

    def detect_language(self, encoded: Any, rows: Sequence[int]) -> list[dict[str, float]]:
        """Each row's probability for every language the model knows (ISO codes)."""
        ...

    def generate(self, encoded: Any, rows: Sequence[int], prompts: Sequence[Prompt], *, beam_size: int,
                 temperature: float, max_length: int) -> list[Generation]: ...


class AsrEngine(Protocol):
    """A loaded speech recogniser; its methods are called from worker threads."""

    name: str
    multilingual: bool
    lanes: int  # requests that may run at once, from as many worker threads

    def decode_batch(self, requests: Sequence[DecodeRequest]) -> list[DecodeResult]: ...

    def detect_language_batch(self, audios: Sequence[np.ndarray]) -> list[dict[str, float]]: ...

    def supports_language(self, code: str) -> bool: ...

    def describe(self) -> str: ...


def _likeliest(probabilities: dict[str, float]) -> tuple[str, float]:
    code = max(probabilities, key=probabilities.__getitem__)
    return code, probabilities[code]


def _timestamp(tokenizer: Any, seconds: float) -> int:
    return tokenizer.timestamp_begin + min(LAST_TIMESTAMP_INDEX, max(0, round(seconds / TIMESTAMP_STEP_S)))


def _seconds(tokenizer: Any, token: int) -> float:
    """The time a timestamp token stands for."""
    return round((token - tokenizer.timestamp_begin) * TIMESTAMP_STEP_S, 2)


def _compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / max(1, len(zlib.compress(data)))


@dataclass(frozen=True)
class _Plan:
    prompt: Prompt
    tokenizer: Any
    language: str
    probability: float
    prefix: str
    max_length: int
    options: DecodeOptions
    audio_s: float

    @property
    def returned_limit(self) -> int:
        """How many tokens a generation may return (the forced prefix and the new ones)."""
        return self.max_length - self.prompt.prefix_start


def _new_tokens(plan: _Plan, generation: Generation) -> list[int]:
    """The generated tokens after the forced prefix."""
    forced = plan.prompt.tokens[plan.prompt.prefix_start:]
    tokens = generation.tokens
    return tokens[len(forced):] if tokens[: len(forced)] == forced else tokens


def _sound_part(plan: _Plan, generation: Generation) -> Generation:
    """``generation`` without its new tokens from the first segment that loops (Whisper's
    compression-ratio test, on each segment: over a long forced prefix a loop at the end would pass),
    lies past the end of the audio (seen where a stream is cut off mid-word: a phrase made up from the
    prompt), or was cut off by the length limit (a loop)."""
    new = _new_tokens(plan, generation)
    kept = _sound_length(plan, generation, new)
    return replace(generation, tokens=generation.tokens[: len(generation.tokens) - len(new) + kept])


def _sound_length(plan: _Plan, generation: Generation, new: Sequence[int]) -> int:
    """How many of the ``new`` tokens of ``generation`` ``_sound_part`` keeps."""
    tokenizer = plan.tokenizer
    latest = (plan.audio_s + _OVERRUN_S) / TIMESTAMP_STEP_S

    def loops(text: list[int], before: list[int]) -> bool:
        # The segment alone, and with the kept segments before it: a segment may repeat them whole
        # (seen: one French phrase six times over Spanish speech decoded as Italian).
        return _loops(tokenizer, text) or _loops(tokenizer, before + text)

    kept, text, before = 0, [], []
    for i, token in enumerate(new):
        if token < tokenizer.timestamp_begin:
            text.append(token)
            continue
        if token - tokenizer.timestamp_begin > latest or (text and loops(text, before)):
            return kept
        kept, text, before = i + 1, [], before + text
    hit_limit = len(generation.tokens) >= plan.returned_limit
    if text and not hit_limit and not loops(text, before):
        return len(new)  # ends without an end time: <|notimestamps|> mode, or a last segment Whisper left open
    if text and not plan.options.temperature_fallback and not plan.options.timestamp_mode:
        # No timestamps show where the text is whole, and no hotter retry will replace it (partials): keep
        # it up to the loop (typically the speech, then one token over and over where the audio stops)
        # or, cut by the limit without a loop, all of it.
        sound = text[: _loop_start(text)]
        if not _loops(tokenizer, sound):
            return kept + len(sound)
    return kept


def _loops(tokenizer: Any, tokens: Sequence[int]) -> bool:
    """Whisper's compression-ratio test: text that zlib shrinks more than ``_MAX_COMPRESSION`` is a loop."""
    return _compression_ratio(tokenizer.decode(tokens)) > _MAX_COMPRESSION


def _loop_start(tokens: Sequence[int]) -> int:
    """Where the first run of one n-gram repeated ``_LOOP_REPEATS`` times back to back begins (the length
    of ``tokens`` when there is none)."""
    for start in range(len(tokens)):
        for period in range(1, _LOOP_PERIOD + 1):
            run = period * _LOOP_REPEATS
            if start + run <= len(tokens) and all(
                    tokens[start + i] == tokens[start + i % period] for i in range(period, run)):
                return start
    return len(tokens)


def _lost_speech(plan: _Plan, generation: Generation, sound: Generation) -> bool:
    """Whether cutting ``generation`` to its ``sound`` part may have dropped speech: something was cut and
    the kept text does not end (with a timestamp) within ``_FRAGMENT_S`` of the end of the audio."""
    if len(sound.tokens) == len(generation.tokens):
        return False
    last = sound.tokens[-1] if sound.tokens else None
    if last is None or last < plan.tokenizer.timestamp_begin:
        return True
    return plan.audio_s - _seconds(plan.tokenizer, last) > _FRAGMENT_S


def _segments(plan: _Plan, tokens: Sequence[int]) -> tuple[TimedText, ...]:
    """The segments of new tokens in timestamp mode: ``<|t0|> text <|t1|>``; consecutive segments may
    share one timestamp or give one each."""
    begin = plan.tokenizer.timestamp_begin
    prefix = plan.options.timed_prefix
    start = prefix[-1].end if prefix else 0.0  # of the segment being read: the latest timestamp
    segments: list[TimedText] = []
    text: list[int] = []
    for token in tokens:
        if token < begin:
            text.append(token)
            continue
        time = _seconds(plan.tokenizer, token)
        if text:
            segments.append(TimedText(start, time, plan.tokenizer.decode(text).strip()))
            text = []
        start = time
    if text:  # left open: it runs to the end of the audio
        segments.append(TimedText(start, max(plan.audio_s, start), plan.tokenizer.decode(text).strip()))
    return tuple(s for s in segments if s.text)


class WhisperEngine:
    """Whisper for streaming: fitted windows, prompts, forced prefixes and temperature fallback, batched."""

    def __init__(self, backend: WhisperBackend, model_dir: str | Path, name: str,
                 no_speech_threshold: float = 0.6, window_margin_s: float = 1.0,
                 max_tokens_per_second: float = MAX_TOKENS_PER_SECOND) -> None:
        """``model_dir`` holds ``tokenizer.json`` (or is that file); a decode stops after
        ``token_budget(audio seconds, max_tokens_per_second)`` new tokens."""
        import tokenizers
        from faster_whisper.feature_extractor import FeatureExtractor
        from faster_whisper.tokenizer import _LANGUAGE_CODES, Tokenizer

        self.name = name
        self.backend = backend
        self.multilingual = backend.multilingual
        self.lanes = backend.lanes
        self._features = FeatureExtractor(feature_size=backend.n_mels)
        tokenizer_file = Path(model_dir)
        if tokenizer_file.is_dir():
            tokenizer_file = tokenizer_file / "tokenizer.json"
        self._hf_tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer_cls = Tokenizer
        self._languages = frozenset(_LANGUAGE_CODES) if self.multilingual else frozenset({"en"})
        self._no_speech_threshold = no_speech_threshold
        self._margin_frames = int(window_margin_s * 100)
        self._max_tokens_per_second = max_tokens_per_second

    def supports_language(self, code: str) -> bool:
        return code in self._languages

    def describe(self) -> str:
        return f"whisper-{self.name} ({self.backend.kind}, {self.backend.device})"

    def tokenizer(self, task: str = "transcribe", language: str = "en"):
        """faster-whisper's tokenizer for this model, task and language."""
        return self._tokenizer_cls(
            self._hf_tokenizer, self.multilingual,
            task=task if self.multilingual else "transcribe", language=language,
        )

    def detect_language(self, audio: np.ndarray) -> dict[str, float]:
        """The probability that ``audio`` is spoken in each language (ISO codes)."""
        return self.detect_language_batch([audio])[0]

    def detect_language_batch(self, audios: Sequence[np.ndarray]) -> list[dict[str, float]]:
        """``detect_language`` for several pieces of audio, encoded together in a window fitted to the
        longest (``MIN_FITTED_WINDOW_S`` at least)."""
        if not self.multilingual:
            return [{"en": 1.0}] * len(audios)
        encoded = self._encode([(audio, False) for audio in audios])
        return self.backend.detect_language(encoded, range(len(audios)))

    def decode(self, audio: np.ndarray, options: DecodeOptions) -> DecodeResult:
        """Decode 16 kHz mono float32 ``audio``; output Whisper marks as no speech is dropped."""
        return self.decode_batch([DecodeRequest(audio, options)])[0]

    def decode_batch(self, requests: Sequence[DecodeRequest]) -> list[DecodeResult]:
        """Decode several requests with batched encoder passes and decoding; results in request order.

        Full-window requests (finals) and fitted-window ones (partials) are encoded apart: padding a
        few seconds of partial audio to a final's 30 s would cost more than a second encoder call."""
        by_window: dict[bool, list[int]] = defaultdict(list)
        for i, request in enumerate(requests):
            by_window[request.options.full_window].append(i)
        results: list[DecodeResult | None] = [None] * len(requests)
        for rows in by_window.values():
            for row, result in zip(rows, self._decode_same_window([requests[i] for i in rows]), strict=True):
                results[row] = result
        return results  # type: ignore[return-value]

    def _decode_same_window(self, requests: Sequence[DecodeRequest]) -> list[DecodeResult]:
        encoded = self._encode([(r.audio, r.options.full_window) for r in requests])
        detect = [i for i, r in enumerate(requests) if r.options.language is None and self.multilingual]
        detected = dict(zip(detect, self.backend.detect_language(encoded, detect) if detect else [], strict=True))
        plans = [self._plan(r, *_likeliest(detected[i]) if i in detected else (r.options.language or "en", 1.0))
                 for i, r in enumerate(requests)]
        generations = self._generate(encoded, plans)
        return [self._result(plan, generation) for plan, generation in zip(plans, generations, strict=True)]

    def _encode(self, items: Sequence[tuple[np.ndarray, bool]]) -> Any:
        features = [self._features(audio) for audio, _ in items]
        frames = max(self._window_frames(f.shape[-1], full) for f, (_, full) in zip(features, items, strict=True))
        batch = np.zeros((len(items), self.backend.n_mels, frames), np.float32)
        for row, feature in enumerate(features):
            used = min(frames, feature.shape[-1])
            batch[row, :, :used] = feature[:, :used]
        return self.backend.encode(batch)

    def _window_frames(self, frames: int, full: bool) -> int:
        if full:
            return FULL_WINDOW_FRAMES
        fitted = max(MIN_FITTED_WINDOW_S * 100, 100 * math.ceil((frames + self._margin_frames) / 100))
        return min(FULL_WINDOW_FRAMES, fitted)

    def _plan(self, request: DecodeRequest, language: str, probability: float) -> _Plan:
        options = request.options
        tokenizer = self.tokenizer(options.task, language)
        prefix = (options.prefix or "").strip()
        tokens: list[int] = []
        if options.context:
            # Half of Whisper's 448-token context at most, as in openai-whisper's decoding.
            tokens = [tokenizer.sot_prev, *tokenizer.encode(" " + options.context.strip())[-(MAX_LENGTH // 2 - 1):]]
        sot_index = len(tokens)
        tokens += tokenizer.sot_sequence
        if not options.timestamp_mode:
            tokens.append(tokenizer.no_timestamps)
        prefix_start = len(tokens)
        for piece in options.timed_prefix:
            tokens += [_timestamp(tokenizer, piece.start), *tokenizer.encode(" " + piece.text.strip()),
                       _timestamp(tokenizer, piece.end)]
        if prefix:
            tokens += tokenizer.encode(" " + prefix)
        max_new = token_budget(request.audio.size / SAMPLE_RATE, self._max_tokens_per_second)
        if options.max_tokens is not None:
            max_new = max(1, min(max_new, options.max_tokens - (len(tokens) - prefix_start)))
        return _Plan(
            prompt=Prompt(tokens, sot_index, prefix_start), tokenizer=tokenizer, language=language,
            probability=probability, prefix=prefix, max_length=min(MAX_LENGTH, len(tokens) + max_new),
            options=options, audio_s=request.audio.size / SAMPLE_RATE,
        )

    def _generate(self, encoded: Any, plans: Sequence[_Plan]) -> list[Generation]:
        """Decode every plan at temperature 0, then retry the failed ones (that allow it) hotter; when all
        fail, the likeliest is kept; each is cut to its sound part (``_sound_part``)."""
        chosen: dict[int, Generation] = {}
        best: dict[int, Generation] = {}
        todo = list(range(len(plans)))
        for temperature in _TEMPERATURES:
            groups: dict[int, list[int]] = defaultdict(list)
            for row in todo:
                groups[plans[row].options.beam_size if temperature == 0 else 1].append(row)
            for beam_size, rows in groups.items():
                generations = self.backend.generate(
                    encoded, rows, [plans[r].prompt for r in rows], beam_size=beam_size,
                    temperature=temperature, max_length=max(plans[r].max_length for r in rows),
                )
                for row, generation in zip(rows, generations, strict=True):
                    plan = plans[row]
                    # A batch decodes to its longest request's limit; each keeps to its own.
                    generation = replace(generation, tokens=generation.tokens[: plan.returned_limit])
                    sound = _sound_part(plan, generation)
                    if row not in best or sound.avg_logprob > best[row].avg_logprob:
                        best[row] = sound
                    if self._acceptable(sound, whole=not _lost_speech(plan, generation, sound)):
                        chosen[row] = sound
            todo = [r for r in todo if r not in chosen and plans[r].options.temperature_fallback]
            if not todo:
                break
        return [chosen.get(row, best[row]) for row in range(len(plans))]

    def _acceptable(self, sound: Generation, whole: bool) -> bool:
        """Whether a generation cut to its sound part (``whole``: no speech was cut) needs no hotter retry."""
        if sound.no_speech_prob > self._no_speech_threshold:
            return True  # silence: a hotter decode would only invent words
        return whole and sound.avg_logprob >= -1.0

    def _result(self, plan: _Plan, generation: Generation) -> DecodeResult:
        tokens = _new_tokens(plan, generation)
        forced = len(generation.tokens) - len(tokens)
        continuation = " ".join(plan.tokenizer.decode(tokens).split())
        closed = bool(tokens) and tokens[-1] >= plan.tokenizer.timestamp_begin  # ended on a segment's end time
        speech_end = _seconds(plan.tokenizer, tokens[-1]) if closed else None
        segments = _segments(plan, tokens) if plan.options.timestamp_mode else ()
        if generation.no_speech_prob > self._no_speech_threshold and generation.avg_logprob < -1.0:
            continuation, segments = "", ()
        return DecodeResult(
            text=f"{plan.prefix} {continuation}".strip(), language=plan.language,
            language_probability=plan.probability, continuation=continuation, speech_end=speech_end,
            segments=segments, tokens=forced + (len(tokens) if continuation else 0),
        )
