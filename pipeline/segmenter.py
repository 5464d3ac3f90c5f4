"""VAD-driven utterance tracking in audio time.

``UtteranceTracker`` turns a stream of 16 kHz samples into an ordered list of decode actions. Every
decision is taken at a position in the audio (never on arrival time), so the same audio gives the same
actions however it was chunked.

An utterance starts when a VAD window is speech, with ``speech_pad_s`` of pre-roll (``pre_roll_s``
where it is decoded alone, never reaching into the previous final). While it lasts, a
partial decode is asked for at fixed audio durations. Once the speech has been quiet for ``speech_pad_s``
the utterance is decoded as a *candidate* final; if the silence reaches ``min_silence_s`` the candidate is
confirmed and becomes the final. Deciding this early means the final decode runs while the silence that
confirms it is still arriving. If speech resumes, the candidate serves as one more partial.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from .audio import TARGET_RATE
from .vad import WINDOW, VadStream


@dataclass(frozen=True)
class StreamingConfig:
    """Segmentation and partial-update policy (seconds are seconds of audio)."""

    vad_threshold: float = 0.5
    min_silence_s: float = 0.5
    speech_pad_s: float = 0.2
    # Audio in front of an utterance that is decoded alone (no final before it in its window): Silero
    # crosses its threshold a few windows into a soft onset ("Please", "Usted"); on 234 clips streamed
    # alone, 0.4 s instead of speech_pad_s took errors from 65 to 57 (en) and 247 to 205 (es),
    # docs/decisions.md. With context in front the onset is in the window anyway, and the utterance's own
    # start stays speech_pad_s early: moving it moved the context's cuts and cost errors on streams.
    pre_roll_s: float = 0.4
    min_speech_s: float = 0.25
    first_partial_s: float = 0.7
    partial_interval_s: float = 1.0
    max_segment_s: float = 20.0
    # A candidate's audio starts up to this much before its utterance, so that its final can be decoded
    # with the earlier speech in front (its final text forced as a prefix), the context Whisper was
    # trained with; 0 turns it off. 7 s measured best over four streams at four offsets (10 s and 5 s
    # lost on en-dev-long or on the clip streams, 20 s dropped utterances): docs/decisions.md.
    context_s: float = 7.0
    max_window_s: float = 28.0  # context + utterance must fit Whisper's 30 s window

    @property
    def neg_threshold(self) -> float:
        return max(self.vad_threshold - 0.15, 0.01)


class ActionKind(Enum):
    PARTIAL = "partial"  # decode the utterance so far, for a partial hypothesis
    CANDIDATE = "candidate"  # decode the utterance as it would be final
    FINALIZE = "finalize"  # the last candidate of this utterance is final


@dataclass
class Action:
    """One step for the session to carry out, in order.

    A CANDIDATE's ``audio`` starts up to ``context_s`` before its utterance (``offset`` samples), never
    before the stream; the earlier utterances in it are the session's to match with their finals. The
    last ``lead_in`` of those samples are the pre-roll for decoding the utterance alone: never before
    the previous final's end.
    """

    kind: ActionKind
    utterance: int
    start: float
    end: float
    audio: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32), repr=False)
    offset: int = 0  # where this utterance starts in ``audio``
    lead_in: int = 0  # samples before ``offset`` that belong to the utterance's pre-roll

    def alone(self) -> tuple[np.ndarray, float]:
        """The utterance's audio from its pre-roll, with no context in front, and the stream seconds it
        starts at."""
        return self.audio[self.offset - self.lead_in :], self.start - self.lead_in / TARGET_RATE


class UtteranceTracker:
    """Feeds a VAD stream and emits decode actions for one session's audio."""

    def __init__(self, vad: VadStream, config: StreamingConfig) -> None:
        self._vad = vad
        self._cfg = config
        self._pad = int(config.speech_pad_s * TARGET_RATE)
        self._extra_pre_roll = max(0, int(config.pre_roll_s * TARGET_RATE) - self._pad)
        self._min_silence = int(config.min_silence_s * TARGET_RATE)
        self._min_speech = int(config.min_speech_s * TARGET_RATE)
        self._max_segment = int(config.max_segment_s * TARGET_RATE)
        self._buf = np.zeros(0, np.float32)  # audio from _buf_start up to _pos
        self._buf_start = 0
        self._pos = 0  # absolute sample index of the end of processed windows
        self._unwindowed = np.zeros(0, np.float32)
        self._utterance = -1
        self._previous_end = 0  # where the latest final ended: no pre-roll reaches before it
        self._in_speech = False
        self._utt_start = 0
        self._speech_samples = 0
        self._silence_start: int | None = None
        self._candidate_sent = False
        self._next_partial = 0
        self._last_pause: int | None = None  # middle of the latest short pause in this utterance
        self._context = int(config.context_s * TARGET_RATE)

    @property
    def audio_seconds(self) -> float:
        """Seconds of audio received so far."""
        return (self._pos + self._unwindowed.size) / TARGET_RATE

    def push(self, samples: np.ndarray) -> list[Action]:
        """Consume 16 kHz samples; return the actions that became due."""
        probs = self._vad.process(samples)
        joined = np.concatenate([self._unwindowed, samples])
        used = probs.size * WINDOW
        self._unwindowed = joined[used:].copy()
        actions: list[Action] = []
        for i, prob in enumerate(probs):
            self._append(joined[i * WINDOW : (i + 1) * WINDOW])
            self._step(float(prob), actions)
        return actions

    def flush(self) -> list[Action]:
        """End of stream: finalise the open utterance, if it holds enough speech."""
        actions: list[Action] = []
        if self._unwindowed.size:
            self._append(self._unwindowed)
            self._unwindowed = np.zeros(0, np.float32)
        if self._in_speech and self._speech_samples >= self._min_speech:
            end = self._pos if self._silence_start is None else min(self._pos, self._silence_start + self._pad)
            actions.append(self._action(ActionKind.CANDIDATE, end))
            actions.append(self._action(ActionKind.FINALIZE, end))
        self._in_speech = False
        return actions

    def _append(self, window: np.ndarray) -> None:
        self._buf = np.concatenate([self._buf, window])
        self._pos += window.size
        if not self._in_speech:
            self._trim_to(self._keep_from())

    def _keep_from(self) -> int:
        """Oldest sample still needed: the context before the utterance, or before the next one's pre-roll."""
        pre_roll = self._pad + self._extra_pre_roll
        return min(self._pos - pre_roll - WINDOW, self._utt_start if self._in_speech else self._pos) - self._context

    def _trim_to(self, start: int) -> None:
        drop = start - self._buf_start
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_start = start

    def _start_utterance(self, start: int) -> None:
        self._utterance += 1
        self._in_speech = True
        self._utt_start = max(self._buf_start, start)
        self._trim_to(self._keep_from())
        self._speech_samples = 0
        self._silence_start = None
        self._candidate_sent = False
        self._last_pause = None
        self._next_partial = int(self._cfg.first_partial_s * TARGET_RATE)

    def _step(self, prob: float, actions: list[Action]) -> None:
        window_start = self._pos - WINDOW
        if not self._in_speech:
            if prob >= self._cfg.vad_threshold:
                self._start_utterance(window_start - self._pad)
                self._speech_samples = WINDOW
            return
        if prob >= self._cfg.vad_threshold:
            self._speech_samples += WINDOW
            if self._silence_start is not None:
                self._last_pause = (self._silence_start + window_start) // 2
            self._silence_start = None
            self._candidate_sent = False
        elif prob < self._cfg.neg_threshold and self._silence_start is None:
            self._silence_start = window_start
        if self._silence_start is not None:
            self._after_quiet_window(actions)
        else:
            self._after_speech_window(actions)

    def _after_quiet_window(self, actions: list[Action]) -> None:
        assert self._silence_start is not None
        silence = self._pos - self._silence_start
        enough_speech = self._speech_samples >= self._min_speech
        if enough_speech and not self._candidate_sent and silence >= self._pad:
            actions.append(self._action(ActionKind.CANDIDATE, self._silence_start + self._pad))
            self._candidate_sent = True
        if silence >= self._min_silence:
            if self._candidate_sent:
                actions.append(self._action(ActionKind.FINALIZE, self._silence_start + self._pad))
            self._in_speech = False

    def _after_speech_window(self, actions: list[Action]) -> None:
        duration = self._pos - self._utt_start
        if duration >= self._max_segment:
            # Cut at the latest pause in the second half of the utterance, else here.
            cut = self._pos
            if self._last_pause is not None and self._last_pause > self._utt_start + self._max_segment // 2:
                cut = self._last_pause
            actions.append(self._action(ActionKind.CANDIDATE, cut))
            actions.append(self._action(ActionKind.FINALIZE, cut))
            self._start_utterance(cut)
            self._speech_samples = self._min_speech  # the speech goes on across the cut
        elif duration >= self._next_partial:
            actions.append(self._action(ActionKind.PARTIAL, self._pos))
            self._next_partial += int(self._cfg.partial_interval_s * TARGET_RATE)

    def _action(self, kind: ActionKind, end: int) -> Action:
        audio, audio_start, lead_from = np.zeros(0, np.float32), self._utt_start, self._utt_start
        if kind is ActionKind.CANDIDATE:
            lead_from = max(self._buf_start, self._previous_end, self._utt_start - self._extra_pre_roll)
            audio_start = max(self._buf_start, min(lead_from, self._utt_start - self._context),
                              min(self._utt_start, end - int(self._cfg.max_window_s * TARGET_RATE)))
        if kind is ActionKind.FINALIZE:  # every utterance with a final ends here, however it ended
            self._previous_end = end
        else:
            audio = self._buf[audio_start - self._buf_start : end - self._buf_start].copy()
        return Action(kind, self._utterance, self._utt_start / TARGET_RATE, end / TARGET_RATE, audio,
                      offset=self._utt_start - audio_start,
                      lead_in=self._utt_start - max(lead_from, audio_start))
