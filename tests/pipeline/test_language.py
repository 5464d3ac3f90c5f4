"""Source language ``auto``: a session's spoken language (each utterance's detection weighed by the ones
before) and the language of typed text."""

from __future__ import annotations

from pipeline.language import LanguageEvidence
from pipeline.translation.text_language import detect_text_language

SPANISH = {"es": 0.8, "it": 0.1, "pt": 0.05, "en": 0.05}
UNSURE_SPANISH = {"it": 0.45, "es": 0.35, "fr": 0.2}  # Whisper's call on a short Spanish prompt
ENGLISH = {"en": 0.95, "es": 0.03, "it": 0.02}


def test_the_first_utterance_takes_its_own_detection():
    evidence = LanguageEvidence()
    assert evidence.likeliest is None
    assert evidence.choose(UNSURE_SPANISH) == "it"


def test_a_session_that_speaks_spanish_outweighs_an_unsure_detection():
    evidence = LanguageEvidence()
    evidence.observe(SPANISH)
    evidence.observe(SPANISH)
    assert evidence.likeliest == "es"
    assert evidence.choose(UNSURE_SPANISH) == "es"


def test_a_clear_switch_wins_at_once_and_becomes_the_session_language():
    evidence = LanguageEvidence()
    for _ in range(5):
        evidence.observe(SPANISH)
    assert evidence.choose(ENGLISH) == "en"
    evidence.observe(ENGLISH)
    evidence.observe(ENGLISH)
    assert evidence.likeliest == "en"
    # Spanish fades but is not forgotten: back to it, an unsure detection is still read as Spanish
    assert evidence.choose(UNSURE_SPANISH) == "es"


def test_named_candidates_settle_the_first_utterance_and_bound_every_choice():
    evidence = LanguageEvidence(candidates=("es", "en"))
    assert evidence.choose(UNSURE_SPANISH) == "es"  # Italian and French are not among them
    evidence.observe(UNSURE_SPANISH)
    assert evidence.likeliest == "es"
    assert evidence.choose({"de": 1.0}) in {"es", "en"}
    fresh = LanguageEvidence(candidates=("es", "en"))
    assert fresh.choose({"de": 0.9, "en": 0.06, "es": 0.04}) == "en"  # the likelier of the two


def test_unknown_languages_in_the_past_do_not_break_the_choice():
    evidence = LanguageEvidence()
    evidence.observe({"es": 1.0})
    assert evidence.choose({"de": 0.6, "nl": 0.4}) == "de"


def test_typed_text_language_prefers_a_translatable_one_among_the_plausible():
    assert detect_text_language("Eu gostaria de um café, por favor.") == "pt"
    assert detect_text_language("Please enter your password.") == "en"
    ours = {"en", "pt"}.__contains__
    # fastText alone: Galician 0.44, Portuguese 0.29, Spanish 0.26
    assert detect_text_language("Bom dia, como vai?") == "gl"
    assert detect_text_language("Bom dia, como vai?", ours) == "pt"
    # a clear call stands even when nothing translates it
    assert detect_text_language("こんにちは世界", ours) == "ja"
