"""Translation requests from many sessions, run as one model call per (model, source, target)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from .base import TextTranslator


@dataclass(frozen=True)
class TranslationRequest:
    backend: TextTranslator
    texts: tuple[str, ...]
    source: str
    target: str


def translate_batch(requests: Sequence[TranslationRequest]) -> list[list[str]]:
    """Each request's translations, in order; requests for the same model and pair share one call."""
    groups: dict[tuple[int, str, str], list[int]] = defaultdict(list)
    for i, request in enumerate(requests):
        groups[(id(request.backend), request.source, request.target)].append(i)
    out: list[list[str]] = [[] for _ in requests]
    for members in groups.values():
        first = requests[members[0]]
        texts = [text for i in members for text in requests[i].texts]
        translated = iter(first.backend.translate(texts, first.source, first.target))
        for i in members:
            out[i] = [next(translated) for _ in requests[i].texts]
    return out
