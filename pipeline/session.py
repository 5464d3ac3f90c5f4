"""One stream's pipeline: bytes and control in, ordered events out.

Tasks: ``_process`` consumes the inbox in order (audio, target changes, typed text, stop), decodes and
runs VAD in a thread, carries out the tracker's decode actions on the shared ASR worker and emits
transcript events; ``_translate`` takes each final in order and emits its translations. Both write to one
bounded outbox, so a final transcript always precedes its translations and translations per target come
in segment order. ``aclose`` cancels both.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace

import numpy as np

from .agreement import LocalAgreement, comparable_words
from .asr import DecodeOptions, DecodeResult, TimedText, token_budget
from .audio import AudioFormat, make_decoder
from .engines import Engines
from .errors import PipelineError, UnsupportedLanguageError
from .events import EndEvent, Event, TranscriptEvent, TranslationErrorEvent, TranslationEvent
from .language import LanguageEvidence, LanguageProbabilities
from .observe import NullObserver, Observer
from .scheduler import Priority
from .segmenter import Action, ActionKind, StreamingConfig, UtteranceTracker
from .translating import run_route
from .translation.languages import is_language_code

AUTO = "auto"
# Source language auto: from this much audio of an utterance on, its partials keep one detected language
# (shorter ones take the session's latest, or detect their own in the first utterance); its final
# detects again on the whole utterance.
_LANGUAGE_LOCK_S = 1.5
_CONTEXT_WORDS = 60
_CONTEXT_UTTERANCES = 32  # final texts kept for acoustic context
_EARLY_STOP_S = 1.5  # a final whose timestamps end this long before its speech is re-decoded alone


def _priority(final: bool) -> Priority:
    return Priority.FINAL if final else Priority.PARTIAL


@dataclass(frozen=True)
class SessionConfig:
    audio: AudioFormat = AudioFormat()
    source_language: str = AUTO
    languages: tuple[str, ...] = ()  # with AUTO, the languages the speech may be in (empty: any Whisper knows)
    targets: tuple[str, ...] = ()
    partials: bool = True
    final_beam_size: int = 5
    partial_beam_size: int = 1
    final_full_window: bool = True  # False: fitted encoder window for finals too (cheaper, less accurate)
    use_context: bool = True  # give recent final text to Whisper as its previous-text prompt
    timed_context: bool = True  # acoustic context's text forced with its timestamps (False: as plain text)
    # A candidate final is decoded at once, before the silence that confirms it, only while this session's
    # final decodes take at most this long (seconds, queueing included). Slower, a candidate that speech
    # resumes after would cost a whole final decode for nothing, which the next utterance waits behind, so
    # the candidate is decoded once confirmed: the same decode, later. 0: always wait; inf: never. 1.5 s
    # clears one session's final decodes on a CPU where they take 0.85-1.2 s (AMD EPYC VM, 2026-12-06: at
    # 1.0 s the gate flapped and final p50/p90 were 1.15-1.19/1.61 s, at 1.5 s 0.96-0.99/1.32-1.36 s, and
    # two sessions did better too) and still closes where one decode takes 1.6 s: docs/decisions.md.
    eager_final_max_s: float = 1.5
    streaming: StreamingConfig = field(default_factory=StreamingConfig)
    inbox_size: int = 64
    outbox_size: int = 1024


@dataclass(frozen=True)
class _Known:
    """A final's text in stream seconds, as Whisper's segments where its decode gave them."""

    start: float
    end: float
    segments: tuple[TimedText, ...]

    def pieces(self) -> list[TimedText]:
        """The segments as pieces of the audio that may be cut apart: each starts where the audio may be
        cut before it (the utterance's start for the first, else midway between it and the segment
        before) and ends where the next starts, the last at the utterance's end."""
        if not self.segments:
            return []
        cuts = [self.start]
        for before, after in itertools.pairwise(self.segments):
            cuts.append(min(max(cuts[-1], (before.end + after.start) / 2), self.end))
        ends = [*cuts[1:], self.end]
        return [TimedText(cut, end, s.text) for cut, end, s in zip(cuts, ends, self.segments, strict=True)]


@dataclass(frozen=True)
class _Window:
    """What one decode runs over: the audio (for a final, with its context in front) and forced text."""

    audio: np.ndarray
    start: float  # stream seconds of audio[0]
    prefix: str = ""  # text the decode must start with: committed words, or context (``timed_context=False``)
    timed: tuple[TimedText, ...] = ()  # context text with its times in ``audio``

    @property
    def has_context(self) -> bool:
        """Whether a final's window holds earlier finals, their text forced in front."""
        return bool(self.prefix or self.timed)


def _alone(action: Action) -> _Window:
    """A final's audio without the speech before it, from its pre-roll: with no text in front, Whisper
    needs the quiet before a soft first word to hear it."""
    return _Window(*action.alone())


@dataclass
class _Final:
    segment: int
    text: str
    language: str
    audio: np.ndarray | None
    targets: tuple[str, ...]


@dataclass(frozen=True)
class _Candidate:
    """An utterance's latest candidate final and, once decoded, its result and language detection."""

    action: Action
    result: DecodeResult | None = None
    detected: LanguageProbabilities | None = None  # source language auto only


@dataclass
class _Failure:
    error: BaseException


class _Stop:
    pass


class Session:
    """Feed audio bytes and control; iterate ``events()`` for ordered results."""

    def __init__(self, engines: Engines, config: SessionConfig, observer: Observer | None = None) -> None:
        self._engines = engines
        self._cfg = config
        self._observer = observer or NullObserver()
        self._arrivals: deque[tuple[float, float]] = deque(maxlen=4096)  # (audio seconds, wall time) per chunk
        self._check_language(config.source_language, allow_auto=True)
        for code in config.languages:
            self._check_language(code, allow_auto=False)
        self._check_targets(config.targets)
        self._decoder = make_decoder(config.audio)
        self._tracker = UtteranceTracker(engines.vad.open_stream(), config.streaming)
        self._inbox: asyncio.Queue = asyncio.Queue(config.inbox_size)
        self._outbox: asyncio.Queue = asyncio.Queue(config.outbox_size)
        self._finals: asyncio.Queue = asyncio.Queue(config.outbox_size)
        self._targets = tuple(config.targets)
        self._next_segment = 0
        self._open_segment: int | None = None  # id given to the utterance in progress, if any
        self._deferred_texts: list[tuple[str, str]] = []
        self._agreement = LocalAgreement()
        self._last_partial: tuple[float, int] | None = None  # (audio end, tokens) of the utterance's last partial
        self._candidate: _Candidate | None = None
        self._partial_task: asyncio.Task | None = None  # the partial decode in flight, if any
        self._final_decode_s = 0.0  # how long the latest final decode took
        self._utt_language: str | None = None
        self._languages = LanguageEvidence(config.languages)
        self._detects_language = config.source_language == AUTO and engines.asr.multilingual
        self._context = ""  # recent final text, Whisper's previous-text prompt
        self._known: dict[int, _Known] = {}  # utterance id → its final, for the context of later ones
        self._tasks = [
            asyncio.create_task(self._run(self._process), name="session-process"),
            asyncio.create_task(self._run(self._translate), name="session-translate"),
        ]
        self._open = True
        engines.sessions.count += 1

    # ---- input side -------------------------------------------------------------------------
    async def feed_audio(self, data: bytes) -> None:
        """Queue audio bytes in the declared encoding (waits while the inbox is full)."""
        await self._inbox.put(bytes(data))

    async def set_targets(self, targets: tuple[str, ...] | list[str]) -> None:
        """Change target languages for segments finalised after the audio fed so far."""
        self._check_targets(tuple(targets))
        await self._inbox.put(("targets", tuple(targets)))

    async def feed_text(self, text: str, source_language: str) -> None:
        """Add a typed sentence as a final segment and translate it into the targets (``source_language``
        may be ``auto``: detected from the text)."""
        self._check_language(source_language, allow_auto=True)
        await self._inbox.put(("text", text, source_language))

    async def stop(self) -> None:
        """End of audio: pending finals, their translations and then ``EndEvent`` follow."""
        await self._inbox.put(_Stop())

    @property
    def audio_seconds(self) -> float:
        return self._tracker.audio_seconds

    @property
    def targets(self) -> tuple[str, ...]:
        return self._targets

    # ---- output side ------------------------------------------------------------------------
    async def events(self) -> AsyncIterator[Event]:
        """Ordered events, ending with ``EndEvent``; a session failure is raised here."""
        while True:
            item = await self._outbox.get()
            if isinstance(item, _Failure):
                raise item.error
            yield item
            if isinstance(item, EndEvent):
                return

    async def aclose(self) -> None:
        """Cancel the session's tasks and release its decoder."""
        if self._open:
            self._open = False
            self._engines.sessions.count -= 1
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        abort = getattr(self._decoder, "abort", None)
        if abort is not None:
            abort()

    async def __aenter__(self) -> "Session":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ---- validation -------------------------------------------------------------------------
    def _check_language(self, code: str, allow_auto: bool) -> None:
        if allow_auto and code == AUTO:
            return
        if not is_language_code(code) or not self._engines.asr.supports_language(code):
            accepted = "'auto' or " if allow_auto else ""
            model = "English only" if not self._engines.asr.multilingual else "ISO 639-1 codes Whisper knows"
            raise UnsupportedLanguageError(
                f"unsupported source language {code!r}; accepted: {accepted}{model} "
                f"(model {self._engines.asr.name})"
            )

    def _check_targets(self, targets: tuple[str, ...]) -> None:
        for target in targets:
            if not is_language_code(target):
                raise UnsupportedLanguageError(f"target {target!r} is not an ISO 639-1 language code")
            source = self._cfg.source_language
            if source != AUTO:
                self._engines.router.route(source, target, has_audio=True)  # raises with what is possible

    # ---- processing -------------------------------------------------------------------------
    async def _run(self, work: Callable[[], Awaitable[None]]) -> None:
        try:
            await work()  # created here, so a session closed before its tasks start leaves no coroutine unawaited
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the consumer of events(), which decides
            await self._outbox.put(_Failure(exc))

    async def _process(self) -> None:
        try:
            await self._process_inbox()
        finally:
            await self._drop_partial()

    async def _process_inbox(self) -> None:
        while True:
            item = await self._inbox.get()
            if isinstance(item, bytes):
                started = time.perf_counter()
                actions = await asyncio.to_thread(self._ingest, item)
                self._observer.observe("ingest", time.perf_counter() - started)
                self._arrivals.append((self._tracker.audio_seconds, time.monotonic()))
                for action in actions:
                    await self._execute(action)
            elif isinstance(item, _Stop):
                for action in await asyncio.to_thread(self._flush):
                    await self._execute(action)
                await self._drop_partial()  # nothing may follow the last final
                await self._emit_deferred_texts()
                await self._finals.put(None)
                return
            elif item[0] == "targets":
                self._targets = item[1]
            elif item[0] == "text":
                self._deferred_texts.append((item[1], item[2]))
                if self._open_segment is None:
                    await self._emit_deferred_texts()

    def _ingest(self, data: bytes) -> list[Action]:
        return self._tracker.push(self._decoder.feed(data))

    def _flush(self) -> list[Action]:
        return self._tracker.push(self._decoder.close()) + self._tracker.flush()

    def _language(self) -> str | None:
        if self._cfg.source_language != AUTO:
            return self._cfg.source_language
        return self._utt_language or self._languages.likeliest

    async def _decode(self, action: Action, final: bool) -> DecodeResult:
        own_audio = action.audio[action.offset :]
        if self._detects_language and self._utt_language is None and own_audio.size >= _LANGUAGE_LOCK_S * 16_000:
            self._utt_language = self._languages.choose(await self._engines.detect_language(own_audio, _priority(final)))
        if not final:
            window = _Window(action.audio, action.start, self._agreement.committed_text)
            return await self._decode_once(window, final=False, max_tokens=self._partial_token_budget(action))
        window = self._with_context(action)
        result = await self._decode_once(window, final=True)
        if window.has_context and self._context_misled(result, window):
            window = _alone(action)
            result = await self._decode_once(window, final=True)  # the utterance alone decides
        segments = tuple(segment.shifted(window.start) for segment in result.segments)
        # The utterance's own text, without the context's; its segments in stream time.
        return replace(result, text=result.continuation, segments=segments)

    def _context_misled(self, result: DecodeResult, window: _Window) -> bool:
        """Signs that the context in front misled Whisper: no words or a last timestamp well before the
        speech ends (it took the new speech as covered), or new text that starts with a context text
        again (a context final that does not match its audio gets transcribed anew, with the new speech
        after it, and would carry on into every later final)."""
        if not result.continuation:
            return True
        speech_end = window.audio.size / 16_000 - self._cfg.streaming.speech_pad_s
        if result.speech_end is not None and result.speech_end < speech_end - _EARLY_STOP_S:
            return True
        new = comparable_words(result.continuation)
        contexts = map(comparable_words, [window.prefix, *(t.text for t in window.timed)])
        return any(new[: len(known)] == known for known in contexts if known)

    def _partial_shown(self) -> bool:
        """Whether the utterance in progress has shown a partial with words."""
        return self._last_partial is not None and self._last_partial[1] > 0

    def _partial_token_budget(self, action: Action) -> int | None:
        """Tokens a partial may hold: the previous partial's and what the audio since can add. Without a
        bound, a partial whose audio stops mid-phrase behind a forced prefix often runs on with one token
        to the length limit, seconds of compute on a slow CPU, in front of the final that follows. The
        allowance on top is the engine's own length budget for the audio since: enough to revise and
        extend the text, and a bound on a loop."""
        if self._last_partial is None:
            return None
        end, tokens = self._last_partial
        return tokens + token_budget(action.end - end)

    async def _decode_once(self, window: _Window, final: bool, max_tokens: int | None = None) -> DecodeResult:
        options = DecodeOptions(
            language=self._language(),
            beam_size=self._cfg.final_beam_size if final else self._cfg.partial_beam_size,
            prefix=window.prefix or None,
            temperature_fallback=final,
            full_window=final and self._cfg.final_full_window,
            context=(self._context or None) if self._cfg.use_context else None,
            timed_prefix=window.timed,
            max_tokens=max_tokens,
        )
        started = time.perf_counter()
        result = await self._engines.decode(window.audio, options, _priority(final))
        self._observer.observe("asr_final" if final else "asr_partial", time.perf_counter() - started)
        return result

    def _with_context(self, action: Action) -> _Window:
        """The final's audio from where the known text of the speech before it begins: segments of the
        latest finals, back to the start of the candidate's audio or to a final without text."""
        audio_start = action.start - action.offset / 16_000
        pieces: list[TimedText] = []
        for utterance in sorted((u for u in self._known if u < action.utterance), reverse=True):
            known = self._known[utterance]
            fitting = [piece for piece in known.pieces() if piece.start >= audio_start]
            pieces[:0] = fitting
            if not known.segments or len(fitting) < len(known.segments):
                break
        if not pieces:
            return _alone(action)
        cut = pieces[0].start
        audio = action.audio[round((cut - audio_start) * 16_000) :]
        if not self._cfg.timed_context:
            return _Window(audio, cut, prefix=" ".join(piece.text for piece in pieces))
        return _Window(audio, cut, timed=tuple(piece.shifted(-cut) for piece in pieces))

    async def _execute(self, action: Action) -> None:
        if action.kind is ActionKind.PARTIAL:
            # Speech resumed after a candidate: it is dropped (it was decoded without the committed prefix,
            # so it cannot extend the stable text).
            self._candidate = None
            self._start_partial(action)
            return
        # A candidate supersedes the partial in flight, and a partial must never follow its utterance's
        # final: the partial is dropped, so the candidate need not wait for it (on a second ASR lane it
        # starts at once). Not the utterance's first partial, though, which tells the speaker they are heard.
        await self._drop_partial(keep_first=True)
        if action.kind is ActionKind.FINALIZE:
            await self._finalize(action)
            return
        self._candidate = None
        if self._final_decode_s <= self._cfg.eager_final_max_s:
            self._candidate = await self._decode_final(action)
        else:
            self._candidate = _Candidate(action)

    def _start_partial(self, action: Action) -> None:
        """Decode a partial beside the session's processing, which goes on reading audio meanwhile. A partial
        is only for display, so it is skipped while another is in flight, and when more audio is already
        waiting (a newer partial is due); not before the utterance has shown words, though: the first
        tells the speaker they are heard. Finals never depend on partials, so they stay the same."""
        in_flight = self._partial_task is not None and not self._partial_task.done()
        if self._cfg.partials and not in_flight and (self._inbox.empty() or not self._partial_shown()):
            self._partial_task = asyncio.create_task(self._run(lambda: self._show_partial(action)),
                                                     name="session-partial")

    async def _show_partial(self, action: Action) -> None:
        await self._hypothesis(action, await self._decode(action, final=False))

    async def _drop_partial(self, keep_first: bool = False) -> None:
        """Cancel the partial decode in flight, if any, and wait until it is gone; ``keep_first``: let the
        utterance's first partial (none shown yet) finish instead."""
        task, self._partial_task = self._partial_task, None
        if task is None or task.done():
            return
        if not keep_first or self._partial_shown():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def _decode_final(self, action: Action) -> _Candidate:
        started = time.perf_counter()
        detected = None
        if self._detects_language:
            # The whole utterance is heard now, and its first seconds often name the wrong language.
            detected = await self._engines.detect_language(action.audio[action.offset :], Priority.FINAL)
            self._utt_language = self._languages.choose(detected)
        result = await self._decode(action, final=True)
        self._final_decode_s = time.perf_counter() - started
        return _Candidate(action, result, detected)

    async def _hypothesis(self, action: Action, result: DecodeResult) -> None:
        self._last_partial = (action.end, result.tokens)
        self._agreement.update(result.text)
        if not result.text:
            return
        segment = self._segment_id()
        await self._outbox.put(
            TranscriptEvent(segment, False, result.text, self._agreement.committed_text,
                            action.start, action.end, result.language)
        )

    async def _finalize(self, action: Action) -> None:
        decoded, self._candidate = self._candidate, None
        assert decoded is not None
        if decoded.result is None:
            decoded = await self._decode_final(decoded.action)
        candidate, result = decoded.action, decoded.result
        assert result is not None
        if decoded.detected is not None and result.text:
            self._languages.observe(decoded.detected)
        segments = result.segments or ((TimedText(candidate.start, candidate.end, result.text),) if result.text else ())
        self._known[candidate.utterance] = _Known(candidate.start, candidate.end, segments)
        for old in [u for u in self._known if u < candidate.utterance - _CONTEXT_UTTERANCES]:
            del self._known[old]
        if result.text or self._open_segment is not None:
            segment = self._segment_id()
            await self._outbox.put(
                TranscriptEvent(segment, True, result.text, result.text, candidate.start, candidate.end, result.language)
            )
            self._observer.observe("final_latency", self._since_arrival(candidate.end))
            if result.text:
                self._context = " ".join((self._context + " " + result.text).split()[-_CONTEXT_WORDS:])
                own_audio = candidate.audio[candidate.offset :]  # without the acoustic context
                await self._finals.put(_Final(segment, result.text, result.language, own_audio, self._targets))
        self._open_segment = None
        self._agreement = LocalAgreement()
        self._last_partial = None
        self._utt_language = None
        await self._emit_deferred_texts()

    def _since_arrival(self, audio_time: float) -> float:
        """Wall seconds since the chunk holding ``audio_time`` was processed."""
        arrived = next((wall for seconds, wall in self._arrivals if seconds >= audio_time), time.monotonic())
        return time.monotonic() - arrived

    def _segment_id(self) -> int:
        if self._open_segment is None:
            self._open_segment = self._next_segment
            self._next_segment += 1
        return self._open_segment

    async def _emit_deferred_texts(self) -> None:
        now = self._tracker.audio_seconds
        for text, language in self._deferred_texts:
            if language == AUTO:
                language = await self._engines.detect_text_language(text, self._targets, self._cfg.languages)
            segment = self._next_segment
            self._next_segment += 1
            await self._outbox.put(TranscriptEvent(segment, True, text, text, now, now, language))
            await self._finals.put(_Final(segment, text, language, None, self._targets))
        self._deferred_texts.clear()

    # ---- translation ------------------------------------------------------------------------
    async def _translate(self) -> None:
        while (final := await self._finals.get()) is not None:
            done: dict[tuple[str, str], str] = {}  # legs already computed for this segment
            for target in final.targets:
                await self._outbox.put(await self._translate_one(final, target, done))
        await self._outbox.put(EndEvent(self._next_segment, round(self._tracker.audio_seconds, 3)))

    async def _translate_one(
        self, final: _Final, target: str, done: dict[tuple[str, str], str]
    ) -> TranslationEvent | TranslationErrorEvent:
        try:
            route = self._engines.router.route(final.language, target, has_audio=final.audio is not None)
            started = time.perf_counter()
            text = await run_route(self._engines, route, final.text, final.audio, done, self._cfg.final_beam_size)
            self._observer.observe("mt", time.perf_counter() - started)
        except PipelineError as exc:
            return TranslationErrorEvent(final.segment, target, exc.code, str(exc))
        return TranslationEvent(final.segment, target, True, text)
