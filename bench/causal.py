"""Offline decoding without look-ahead: how well faster-whisper's own ``transcribe`` does when it must
commit each utterance where a live stream commits it, before hearing what follows.

Offline ``transcribe`` reads every 30 s window whole, so a word near an utterance's end is decided with
the next utterances' audio in view. A stream cannot have that audio without waiting for it. This bound
transcribes the audio up to each commit point (the stream's final ends), keeps the words it had already
committed, and commits the new ones; the errors it makes beyond whole-file ``transcribe`` are what
look-ahead is worth on a recording, which no streaming decoder that finalises on time can recover.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
from rapidfuzz.distance import Levenshtein

from .offline import transcribe_text
from .wer import normalise

if TYPE_CHECKING:
    from faster_whisper import WhisperModel


def new_words(committed: list[str], hypothesis: list[str]) -> list[str]:
    """The words of ``hypothesis`` (a transcript of the audio so far) after what ``committed`` covers.

    Committed words stay as they were. The covered part is the prefix of ``hypothesis`` whose letters
    come closest to the committed ones, so a tail heard again differently ("ten of clubs" then "10 of
    close", "log in" then "login") is matched as a whole and not taken for new words."""
    letters = "".join(committed)
    cut = min(range(len(hypothesis) + 1), key=lambda k: (Levenshtein.distance(letters, "".join(hypothesis[:k])), k))
    return hypothesis[cut:]


def causal_offline_text(whisper: WhisperModel, audio: np.ndarray, commit_ends_s: Iterable[float],
                        language: str | None = "en", sample_rate: int = 16000) -> str:
    """Normalised words committed by transcribing ``audio`` up to each of ``commit_ends_s`` in turn."""
    committed: list[str] = []
    for end in sorted(commit_ends_s):
        heard = normalise(transcribe_text(whisper, audio[: round(end * sample_rate)], language)).split()
        committed += new_words(committed, heard)
    return " ".join(committed)
