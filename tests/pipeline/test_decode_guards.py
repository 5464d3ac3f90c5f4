"""What a decode may hand on: words from the first second of speech; no loops, nothing cut off by the length
limit, no text past the audio."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np

from pipeline import EngineConfig, SessionConfig
from pipeline.asr import DecodeOptions, DecodeRequest, Generation, TimedText, WhisperEngine, _lost_speech, _new_tokens, _sound_part
from pipeline.engines import load_asr_engine
from tests.conftest import manifest, to_s16
from tests.pipeline.test_session import finals, run

TEN_SECONDS = np.zeros(160_000, np.float32)


def _timed_plan(asr: WhisperEngine):
    """A timestamp-mode plan for 10 s of audio whose first 3 s are forced as known text."""
    options = DecodeOptions(language="en", timed_prefix=(TimedText(0.0, 3.0, "Press one to mute yourself."),))
    return asr._plan(DecodeRequest(TEN_SECONDS, options), "en", 1.0)


def _generation(plan, *pieces: str | float) -> Generation:
    """The forced prefix, then ``pieces``: text, or a timestamp in seconds."""
    tokenizer = plan.tokenizer
    tokens = list(plan.prompt.tokens[plan.prompt.prefix_start:])
    for piece in pieces:
        tokens += [tokenizer.timestamp_begin + round(piece / 0.02)] if isinstance(piece, float) \
            else tokenizer.encode(" " + piece)
    return Generation(tokens, avg_logprob=-0.2, no_speech_prob=0.0)


def _kept_text(plan, generation: Generation) -> str:
    return plan.tokenizer.decode(_new_tokens(plan, _sound_part(plan, generation))).strip()


def test_only_sound_segments_are_kept():
    asr, _ = load_asr_engine(EngineConfig(asr_model="tiny.en"))
    plan = _timed_plan(asr)
    sound = _generation(plan, 3.5, "The conference will begin.", 5.0, 5.2, "You have been removed.", 10.8, 10.8)
    assert _sound_part(plan, sound) == sound
    assert _kept_text(plan, sound) == "The conference will begin. You have been removed."  # may end 1 s late
    loop = _generation(plan, 3.5, "The conference will begin.", 5.0, 5.0, "The " + "r" * 200, 9.0)
    assert _kept_text(plan, loop) == "The conference will begin."
    past_the_audio = _generation(plan, 3.5, "The conference will begin.", 5.0, 9.8, "Press star for the first time.", 11.5)
    assert _kept_text(plan, past_the_audio) == "The conference will begin."
    left_open = _generation(plan, 3.5, "The conference will begin.", 5.0, 5.0, "You have been")
    assert _kept_text(plan, left_open) == "The conference will begin. You have been"  # Whisper may leave the last open


def test_segments_that_repeat_the_ones_before_are_a_loop():
    """Each copy of a repeated segment passes the compression test alone; together they do not."""
    asr, _ = load_asr_engine(EngineConfig(asr_model="tiny.en"))
    plan = _timed_plan(asr)
    phrase = "The conference will begin when the leader arrives."
    times = [3.5 + 0.9 * i for i in range(7)]
    repeated = _generation(plan, *itertools.chain.from_iterable((t, phrase) for t in times[:6]), times[6])
    assert _kept_text(plan, repeated) == f"{phrase} {phrase}"
    two = _generation(plan, 3.5, phrase, 5.0, 5.2, phrase, 7.0)
    assert _sound_part(plan, two) == two  # said twice is speech


def test_only_a_cut_that_may_have_dropped_speech_asks_for_a_hotter_retry():
    """A loop or made-up text cut from the last half second of the audio (a stream stopped mid-word) lost
    a word fragment at most: the kept text stands. Cut earlier, or without a timestamp to show where the
    kept text ends, speech may be lost and the decode is retried hotter."""
    asr, _ = load_asr_engine(EngineConfig(asr_model="tiny.en"))
    plan = _timed_plan(asr)

    def lost(generation: Generation) -> bool:
        return _lost_speech(plan, generation, _sound_part(plan, generation))

    assert not lost(_generation(plan, 3.5, "The conference will begin.", 9.6))
    assert not lost(_generation(plan, 3.5, "The conference will begin.", 9.6, 9.6, "The " + "_" * 300))
    assert not lost(_generation(plan, 3.5, "The conference will begin.", 9.8, 9.8, "Press star for the first time.", 11.5))
    assert lost(_generation(plan, 3.5, "The conference will begin.", 5.0, 5.0, "The " + "r" * 200, 9.0))
    assert lost(_generation(plan, 3.5, "The conference will begin.", 5.0, 9.0, "You have been removed.", 11.5))
    assert lost(_generation(plan, "The " + "r" * 200, 9.0))
    plain = asr._plan(DecodeRequest(TEN_SECONDS, DecodeOptions(language="en", temperature_fallback=True)), "en", 1.0)
    loop = _generation(plain, "The " + "r" * 200)
    assert _lost_speech(plain, loop, _sound_part(plain, loop))


def test_a_decode_stopped_by_the_length_limit_keeps_only_whole_segments(dev_long):
    """Cut off by the token limit, a timestamp-mode decode keeps the segments it finished; a decode
    without timestamps, which cannot show where its text is whole, keeps nothing."""
    from pipeline.whisper_ct2 import CTranslate2Backend
    from pipeline.models import resolve_whisper_model

    audio, meta = dev_long
    path = resolve_whisper_model("tiny.en")
    backend = CTranslate2Backend(str(path))
    free = WhisperEngine(backend, path, "tiny.en")
    limited = WhisperEngine(backend, path, "tiny.en", max_tokens_per_second=0.0)  # 16 new tokens at most
    first, *rest = meta["utterances"][6:10]
    clip = audio[int((first["start"] - 0.2) * 16000): int((rest[-1]["end"] + 0.2) * 16000)]
    timed = DecodeOptions(language="en", beam_size=5,
                          timed_prefix=(TimedText(0.0, first["end"] - first["start"] + 0.2, first["text"]),))
    whole, cut = free.decode(clip, timed), limited.decode(clip, timed)
    assert cut.continuation and len(cut.continuation) < len(whole.continuation)
    assert whole.continuation.startswith(cut.continuation) and cut.speech_end is not None
    plain = DecodeOptions(language="en", beam_size=5, temperature_fallback=True)
    assert free.decode(clip, plain).continuation and limited.decode(clip, plain).continuation == ""
    # With no hotter retry to replace it (partials, speech translation), the cut text is all there is.
    partial = limited.decode(clip, replace(plain, temperature_fallback=False)).continuation
    assert partial and free.decode(clip, plain).continuation.startswith(partial)


def test_a_decode_without_retries_keeps_what_came_before_its_loop():
    """Without timestamps nothing shows where the text is whole; a final is retried hotter, but a partial
    has no retry, so it keeps its words up to the token that repeats to the limit."""
    asr, _ = load_asr_engine(EngineConfig(asr_model="tiny.en"))
    for fallback, kept in ((False, "The conference will begin."), (True, "")):
        plan = asr._plan(DecodeRequest(TEN_SECONDS, DecodeOptions(language="en", temperature_fallback=fallback)), "en", 1.0)
        looping = _generation(plan, "The conference will begin. " + "_" * 400)
        assert _kept_text(plan, looping) == kept
        assert _lost_speech(plan, looping, _sound_part(plan, looping))


def test_a_partial_behind_a_forced_prefix_keeps_its_words_within_its_token_budget(engines, dev_long):
    """Real case: 12 s into the echo-test monologue, cut mid-phrase ("…an audible sense of"), with the
    words already committed forced in front, Whisper base writes the rest, then one token over and over
    to the length limit. The partial keeps the words, and its token budget ends the loop early."""
    audio, _ = dev_long
    clip = audio[int(151.4 * 16000): int(163.5 * 16000)]
    committed = "You're about to enter an echo test. In this mode, everything you say will be repeated back to you"
    options = DecodeOptions(language="en", prefix=committed, full_window=False)
    result = engines.asr.decode(clip, options)
    assert "as soon as it is received" in result.continuation and "sense of" in result.continuation
    budget = result.tokens + 8
    assert engines.asr._plan(DecodeRequest(clip, replace(options, max_tokens=budget)), "en", 1.0).returned_limit == budget
    assert engines.asr.decode(clip, replace(options, max_tokens=budget)).continuation == result.continuation


async def test_a_stream_cut_off_mid_word_ends_with_the_cut_word_at_most(engines, dev_long):
    """The stream stops 0.4 s into "The purpose of this test…": the last final may end with the cut word,
    never with a phrase made up from the earlier text or a loop (seen: "The press star for the first
    time.", "The prrrr…")."""
    audio, _ = dev_long
    events = await run(engines, to_s16(audio[16000 * 120: 16000 * 160]), SessionConfig(source_language="en"))
    last = finals(events)[-1].text
    assert "as soon as it is received." in last
    tail = last.split("received.")[-1]
    assert len(tail.split()) <= 2 and len(tail) <= 12, last


async def test_a_wrong_final_is_not_carried_into_the_next_ones(engines, speech_dir):
    """In the accuracy benchmark's mix-1 stream, "…to leave the conference." is finalised as "Dial 3, to
    leave the conference." (the earlier "Dial 1…Dial 4" prompts lead Whisper on). Forced as context in
    front of the next utterances, that text no longer matches its audio; Whisper transcribed it anew
    each time ("Dial 3, to leave the conference. You are now unmuted.", then that again and more). Each
    final must hold only its own speech."""
    from bench.accuracy import build_streams

    _, audio, _ = build_streams(speech_dir)[2]
    events = await run(engines, to_s16(audio[: 16000 * 40]), SessionConfig(source_language="en", partials=False))
    texts = [e.text for e in finals(events)]
    assert len(texts) >= 6
    for before, after in itertools.pairwise(texts):
        assert not after.lower().startswith(before.lower().rstrip(".")), texts


def test_the_first_partial_of_an_utterance_has_its_words(engines):
    """A partial 0.7 s into speech (what a session asks for first) is encoded in a window fitted to its
    audio but at least 10 s long: Whisper, trained on 30 s windows, wrote nothing for about 4 in 10 of
    these clips when the window was the audio plus 1 s."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    from bench.offline import load_audio

    clips = [clip for clip in manifest() if clip.lang == "en" and clip.id.startswith("ast-")][:20]
    assert len(clips) == 20
    heard = 0
    for clip in clips:
        audio = load_audio(clip.path)
        start = get_speech_timestamps(audio, VadOptions(min_silence_duration_ms=500))[0]["start"]
        first_partial = audio[max(0, start - 3200): start + 11200]  # 0.2 s of pre-roll, 0.7 s of speech
        text = engines.asr.decode(first_partial, DecodeOptions(language="en", full_window=False)).text
        heard += bool(text)
    assert heard >= 18, f"{20 - heard} of 20 first partials had no words"
