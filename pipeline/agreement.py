"""LocalAgreement-2 (Macháček et al., arXiv 2307.14743): commit the words two consecutive hypotheses agree on."""

from __future__ import annotations

import re

_PUNCT = re.compile(r"[^\w']+", re.UNICODE)


def _norm(word: str) -> str:
    return _PUNCT.sub("", word.lower())


def comparable_words(text: str) -> list[str]:
    """The words of ``text`` as they are compared here: lower case, punctuation dropped."""
    return [word for word in map(_norm, text.split()) if word]


class LocalAgreement:
    """Tracks the committed (stable) word prefix of one utterance across successive hypotheses."""

    def __init__(self) -> None:
        self.committed: list[str] = []
        self._previous: list[str] = []

    @property
    def committed_text(self) -> str:
        return " ".join(self.committed)

    def update(self, hypothesis: str) -> list[str]:
        """Add a hypothesis of the whole utterance; return the words newly committed."""
        words = hypothesis.split()
        n = len(self.committed)
        agreed = n
        while (
            agreed < len(words)
            and agreed < len(self._previous)
            and _norm(words[agreed]) == _norm(self._previous[agreed])
        ):
            agreed += 1
        newly = words[n:agreed]
        self.committed.extend(newly)
        self._previous = words
        return newly
