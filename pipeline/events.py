"""Events a session yields, in order. The gateway turns each into one protocol message."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TranscriptEvent:
    """A partial or final hypothesis of one segment. ``stable`` is a prefix of ``text`` that never changes."""

    segment: int
    final: bool
    text: str
    stable: str
    start: float
    end: float
    language: str


@dataclass(frozen=True)
class TranslationEvent:
    segment: int
    target: str
    final: bool
    text: str


@dataclass(frozen=True)
class TranslationErrorEvent:
    """A final segment could not be translated into ``target``; the session goes on."""

    segment: int
    target: str
    code: str
    message: str


@dataclass(frozen=True)
class EndEvent:
    """All audio is processed and every final and translation was emitted."""

    segments: int
    audio_seconds: float


Event = TranscriptEvent | TranslationEvent | TranslationErrorEvent | EndEvent
