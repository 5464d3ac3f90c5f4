"""Offline decoding without look-ahead (``bench.causal``): committed words never change, new ones follow."""

from __future__ import annotations

import numpy as np
import pytest

from bench.causal import causal_offline_text, new_words
from bench.offline import load_audio, load_offline_model, transcribe_text
from bench.wer import normalise, word_errors


@pytest.mark.parametrize(
    ("committed", "heard", "new"),
    [
        ("", "press star to cancel", "press star to cancel"),
        ("press star", "press star to cancel", "to cancel"),
        ("ten of", "10 of clubs goodbye", "clubs goodbye"),  # a committed word heard again differently
        ("ten of clubs", "10 of close goodbye", "goodbye"),  # …at the end of what was committed
        ("agent log in", "agent login please enter", "please enter"),  # one word for two: the tail stays put
        ("press star", "press start to cancel", "to cancel"),
        ("agent login", "agent log in please", "please"),
        ("goodbye thank you", "goodbye please hold thank you for calling",  # a committed tail heard no more
         "please hold thank you for calling"),
        ("press star to cancel", "press star to cancel", ""),
        ("press star", "", ""),
    ],
)
def test_new_words_follow_what_was_committed(committed, heard, new):
    assert new_words(committed.split(), heard.split()) == new.split()


@pytest.fixture(scope="module")
def tiny_en():
    return load_offline_model("tiny.en")


def _two_clips(speech_dir, first: str, second: str) -> tuple[np.ndarray, float]:
    a, b = (load_audio(speech_dir / "en" / f"{name}.flac") for name in (first, second))
    gap = np.zeros(16000, np.float32)
    return np.concatenate([a, gap, b]), (a.size + gap.size // 2) / 16000


def test_causal_text_commits_the_first_utterance_before_hearing_the_second(speech_dir, tiny_en):
    audio, first_end = _two_clips(speech_dir, "ast-en-vm-nobox", "ast-en-conf-now-unmuted")
    causal = causal_offline_text(tiny_en, audio, [audio.size / 16000, first_end])
    first = normalise(transcribe_text(tiny_en, audio[: round(first_end * 16000)]))
    assert first and causal.startswith(first + " ")
    errors, words = word_errors("you cannot reply to this message because the sender does not have a mailbox "
                                "the conference is now unmuted", causal)
    assert errors <= 2 and words == 19


def test_one_commit_point_at_the_end_is_plain_offline_transcription(speech_dir, tiny_en):
    audio, _ = _two_clips(speech_dir, "ast-en-vm-sorry", "ast-en-conf-usermenu")
    assert causal_offline_text(tiny_en, audio, [audio.size / 16000]) == normalise(transcribe_text(tiny_en, audio))
