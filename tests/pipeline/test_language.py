"""A session's spoken language (source ``auto``): each utterance's detection weighed by the ones before."""

from __future__ import annotations

from pipeline.language import LanguageEvidence

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


def test_unknown_languages_in_the_past_do_not_break_the_choice():
    evidence = LanguageEvidence()
    evidence.observe({"es": 1.0})
    assert evidence.choose({"de": 0.6, "nl": 0.4}) == "de"
