"""Word error rate with the project's one normalisation (lowercase, punctuation removed), via jiwer."""

from __future__ import annotations

import jiwer

_NORMALISE = jiwer.Compose(
    [
        jiwer.ToLowerCase(),
        jiwer.SubstituteRegexes({r"(\w)-(\w)": r"\1 \2"}),  # "cold-hearted" and "cold hearted" agree
        jiwer.RemovePunctuation(),
        jiwer.RemoveMultipleSpaces(),
        jiwer.Strip(),
        jiwer.ReduceToListOfListOfWords(),
    ]
)


def normalise(text: str) -> str:
    """The text as WER sees it."""
    return " ".join(_NORMALISE(text)[0]) if text.strip() else ""


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference words), with the same normalisation."""
    out = jiwer.process_words(
        reference, hypothesis, reference_transform=_NORMALISE, hypothesis_transform=_NORMALISE
    )
    return out.substitutions + out.deletions + out.insertions, len(out.references[0])


def wer(reference: str, hypothesis: str) -> float:
    """Corpus WER of one hypothesis string against one reference string."""
    return jiwer.wer(
        reference, hypothesis, reference_transform=_NORMALISE, hypothesis_transform=_NORMALISE
    )
