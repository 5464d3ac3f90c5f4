"""The accuracy benchmark's extra streams: built from the clips en-dev-long does not use, the same every run."""

from __future__ import annotations

import json

from bench.accuracy import build_streams
from bench.wer import word_errors


def test_extra_streams_are_reproducible_and_disjoint_from_dev_long(speech_dir):
    first, again = build_streams(speech_dir), build_streams(speech_dir)
    assert [name for name, _, _ in first] == ["en-dev-long", "mix-0", "mix-1", "mix-2"]
    for (_, audio, text), (_, audio_again, text_again) in zip(first, again, strict=True):
        assert text == text_again and audio.size == audio_again.size and audio.size > 16000 * 60
    dev_texts = {u["text"] for u in json.loads((speech_dir / "en-dev-long.json").read_text())["utterances"]}
    mixed = " | ".join(text for _, _, text in first[1:])
    assert sum(word_errors(text, text)[1] for _, _, text in first) > 900
    assert not any(t in mixed for t in dev_texts if len(t) > 40)


def test_errors_count_words_after_normalisation():
    assert word_errors("Press star, to cancel.", "press start to cancel") == (1, 4)


def test_continuous_streams_hold_speech_that_only_the_length_limit_cuts(speech_dir):
    """The joined streams say what the mixed ones say, with the clips' silences gone: the VAD finds
    stretches of speech longer than a segment may be (20 s) in each."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    mixed, joined = build_streams(speech_dir)[1:], build_streams(speech_dir, continuous=True)[1:]
    for (_, mixed_audio, mixed_text), (name, audio, text) in zip(mixed, joined, strict=True):
        assert name.startswith("joined-") and text == mixed_text
        assert audio.size < 0.9 * mixed_audio.size
        spans = get_speech_timestamps(audio, VadOptions(min_silence_duration_ms=500))
        assert max(span["end"] - span["start"] for span in spans) > 20 * 16000
