"""Choose how to get from a source language to a target: identity, one text model, Whisper's
speech → English decode, or a pivot through English combining them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from ..errors import TranslationUnavailableError, UnsupportedLanguageError
from .base import TextTranslator
from .languages import is_language_code

PIVOT = "en"


class RouteKind(Enum):
    IDENTITY = "identity"
    TEXT = "text"
    SPEECH = "speech"  # Whisper task="translate" on the segment's audio, then optional text legs
    PIVOT = "pivot"


@dataclass(frozen=True)
class Leg:
    """One hop. ``backend`` None means Whisper's speech → English decode of the segment audio."""

    backend: TextTranslator | None
    source: str
    target: str


@dataclass(frozen=True)
class Route:
    kind: RouteKind
    legs: tuple[Leg, ...]

    def describe(self) -> str:
        return " → ".join([self.legs[0].source, *(leg.target for leg in self.legs)]) if self.legs else "identity"


class TranslationRouter:
    """Plans translations with the loaded text backends (and Whisper speech → English if available)."""

    def __init__(self, translators: Sequence[TextTranslator], speech_to_english: bool) -> None:
        self._translators = list(translators)
        self._speech_to_english = speech_to_english

    def _text_backend(self, source: str, target: str) -> TextTranslator | None:
        return next((t for t in self._translators if t.supports(source, target)), None)

    def _to_english(self, source: str, has_audio: bool) -> Leg | None:
        backend = self._text_backend(source, PIVOT)
        if backend is not None:
            return Leg(backend, source, PIVOT)
        if has_audio and self._speech_to_english:
            return Leg(None, source, PIVOT)
        return None

    def route(self, source: str, target: str, has_audio: bool) -> Route:
        """The cheapest route, or TranslationUnavailableError saying what is possible
        (UnsupportedLanguageError for something that is not a language code)."""
        for code in (source, target):
            if not is_language_code(code):
                raise UnsupportedLanguageError(f"{code!r} is not a language code: use ISO 639-1 codes such as 'en', 'pt'")
        if source == target:
            return Route(RouteKind.IDENTITY, ())
        direct = self._text_backend(source, target)
        if direct is not None:
            return Route(RouteKind.TEXT, (Leg(direct, source, target),))
        first = self._to_english(source, has_audio)
        if first is not None and target == PIVOT:
            return Route(RouteKind.SPEECH if first.backend is None else RouteKind.TEXT, (first,))
        second = self._text_backend(PIVOT, target)
        if first is not None and second is not None:
            return Route(RouteKind.PIVOT, (first, Leg(second, PIVOT, target)))
        raise TranslationUnavailableError(
            f"no translation from {source!r} to {target!r} with the loaded models "
            f"({', '.join(t.name for t in self._translators) or 'none'}"
            f"{', whisper speech→en' if self._speech_to_english else ''}); "
            "add a model for this pair (see README, 'Models')"
        )

    def can_route(self, source: str, target: str, has_audio: bool) -> bool:
        try:
            self.route(source, target, has_audio)
        except (TranslationUnavailableError, UnsupportedLanguageError):
            return False
        return True
