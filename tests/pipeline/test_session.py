"""The streaming session on real models and real recordings."""

from __future__ import annotations

import asyncio
import random
import re

import numpy as np
import pytest
import soxr

from bench.offline import load_audio, offline_transcribe
from bench.wer import normalise, wer
from pipeline import (
    AudioFormat,
    BadAudioError,
    EndEvent,
    PipelineError,
    Session,
    SessionConfig,
    TranscriptEvent,
    TranslationErrorEvent,
    TranslationEvent,
)
from tests.conftest import STREAMING_WER_SLACK, manifest, to_s16

CHUNK_100MS = 3200


async def run(engines, data: bytes, config: SessionConfig, sizes=None) -> list:
    """Feed ``data`` in chunks (100 ms of s16 by default, no pacing), stop, and collect all events."""
    session = Session(engines, config)
    sizes = sizes or [CHUNK_100MS] * (len(data) // CHUNK_100MS + 1)

    async def feed() -> None:
        offset = 0
        for size in sizes:
            if offset >= len(data):
                break
            await session.feed_audio(data[offset : offset + size])
            offset += size
        await session.stop()

    feeder = asyncio.create_task(feed())
    try:
        events = [e async for e in session.events()]
    finally:
        feeder.cancel()
        await session.aclose()
    return events


def finals(events) -> list[TranscriptEvent]:
    return [e for e in events if isinstance(e, TranscriptEvent) and e.final]


def check_ordering(events, targets) -> None:
    """Segments finalised in order, never revised, one translation per target per non-empty final."""
    final_seen: set[int] = set()
    translated: dict[str, list[int]] = {t: [] for t in targets}
    order = []
    previous_end = 0.0
    for e in events:
        if isinstance(e, TranscriptEvent):
            assert e.segment not in final_seen, f"segment {e.segment} changed after its final"
            assert e.text.startswith(e.stable) or e.final
            if e.final:
                assert e.start >= previous_end, f"segment {e.segment} starts in the audio of the one before"
                previous_end = e.end
                final_seen.add(e.segment)
                order.append(e.segment)
        elif isinstance(e, (TranslationEvent, TranslationErrorEvent)):
            assert e.segment in final_seen, "translation before its final transcript"
            translated[e.target].append(e.segment)
    assert order == list(range(len(order))), f"finals out of order: {order}"
    assert isinstance(events[-1], EndEvent) and events[-1].segments == len(order)
    non_empty = [e.segment for e in finals(events) if e.text]
    for target, segments in translated.items():
        assert segments == non_empty, f"translations into {target}: {segments} != finals {non_empty}"


@pytest.mark.slow
async def test_dev_long_streaming_wer_close_to_offline(engines, dev_long):
    audio, meta = dev_long
    reference = " ".join(u["text"] for u in meta["utterances"])
    events = await run(engines, to_s16(audio), SessionConfig(source_language="en", targets=("pt",)))
    check_ordering(events, ["pt"])
    hypothesis = " ".join(e.text for e in finals(events))
    stream_wer = wer(reference, hypothesis)
    offline_wer = wer(reference, offline_transcribe("base", audio).text)
    print(f"\nen-dev-long base: streaming WER {stream_wer:.4f}, offline transcribe WER {offline_wer:.4f}")
    for utterance in meta["utterances"]:  # every utterance is covered by a final
        covering = [e for e in finals(events) if e.start < utterance["end"] and e.end > utterance["start"] and e.text]
        assert covering, f"no final for utterance {utterance['id']} at {utterance['start']}s"
    assert stream_wer <= offline_wer + STREAMING_WER_SLACK
    translations = [e for e in events if isinstance(e, TranslationEvent)]
    assert all(t.text for t in translations)


async def test_decisions_follow_audio_time_not_chunking(engines, dev_long):
    audio, _ = dev_long
    data = to_s16(audio[: 16000 * 40])
    config = SessionConfig(source_language="en", targets=())
    reference = await run(engines, data, config)
    rng = random.Random(7)
    sizes = [rng.choice([1, 3, 4095, 65536, rng.randint(1, 65536)]) for _ in range(4000)]
    chunked = await run(engines, data, config, sizes)
    assert [(e.text, e.start, e.end) for e in finals(chunked)] == [(e.text, e.start, e.end) for e in finals(reference)]
    assert len(finals(reference)) >= 5


async def test_each_utterance_shows_a_partial_when_audio_arrives_faster_than_it_is_decoded(engines, dev_long):
    """A partial is skipped while newer audio waits, but not an utterance's first: fed as fast as the
    session takes it (audio always waiting, as behind a slow final decode), every utterance long enough
    for one still gets a partial before its final."""
    audio, _ = dev_long
    events = await run(engines, to_s16(audio[: 16000 * 40]), SessionConfig(source_language="en", targets=()))
    with_partials = {e.segment for e in events if isinstance(e, TranscriptEvent) and not e.final and e.text}
    long_finals = [e.segment for e in finals(events) if e.text and e.end - e.start >= 1.5]
    assert len(long_finals) >= 6
    assert [segment for segment in long_finals if segment not in with_partials] == []


async def test_slow_final_decodes_wait_for_the_confirming_silence(engines, dev_long):
    """Where final decodes are slower than ``eager_final_max_s``, a candidate final is decoded only once
    its silence is confirmed: no decode goes to the candidates that speech resumed after (two in these
    40 s), and the finals are the same."""
    audio, _ = dev_long
    data = to_s16(audio[: 16000 * 40])

    def decodes_run() -> int:
        return sum(size * n for size, n in engines.asr_worker.batch_sizes.items())

    async def finals_and_decodes(eager_final_max_s: float) -> tuple[list, int]:
        config = SessionConfig(source_language="en", partials=False, eager_final_max_s=eager_final_max_s)
        before = decodes_run()
        events = await run(engines, data, config)
        return [(e.text, e.start, e.end) for e in finals(events)], decodes_run() - before

    eager, eager_decodes = await finals_and_decodes(float("inf"))
    waiting, waiting_decodes = await finals_and_decodes(0.0)
    assert waiting == eager and len(eager) >= 5
    assert waiting_decodes < eager_decodes


def encode_webm(audio: np.ndarray) -> bytes:
    from tests.pipeline.test_audio import encode_opus

    return encode_opus(audio, "webm")


async def test_all_input_formats_give_the_same_words(engines, dev_long):
    audio, _ = dev_long
    clip = audio[: 16000 * 21]
    config = SessionConfig(source_language="en", partials=False)
    base_text = " ".join(e.text for e in finals(await run(engines, to_s16(clip), config)))
    assert len(base_text.split()) > 15
    variants = {f"s16@{rate}": (AudioFormat("pcm_s16le", rate), to_s16(soxr.resample(clip, 16000, rate)))
                for rate in (8000, 44100, 48000)}
    variants["f32@16000"] = (AudioFormat("pcm_f32le", 16000), clip.astype("<f4").tobytes())
    variants["webm_opus"] = (AudioFormat("webm_opus", 48000), encode_webm(clip))
    for name, (fmt, data) in variants.items():
        events = await run(engines, data, SessionConfig(audio=fmt, source_language="en", partials=False), [4096] * 5000)
        text = " ".join(e.text for e in finals(events))
        # 8 kHz loses everything above 4 kHz: a few words may differ
        assert wer(base_text, text) <= 0.15, f"{name}: {text!r} vs {base_text!r}"


@pytest.mark.parametrize("kind", ["silence", "noise"])
async def test_silence_and_noise_give_no_words(engines, kind):
    rng = np.random.default_rng(1)
    audio = np.zeros(16000 * 30, np.float32) if kind == "silence" else (rng.normal(0, 0.01, 16000 * 30)).astype(np.float32)
    events = await run(engines, to_s16(audio), SessionConfig(source_language="auto", targets=("pt",)))
    words = [e.text for e in events if isinstance(e, TranscriptEvent) and e.text]
    assert words == []
    assert isinstance(events[-1], EndEvent) and events[-1].segments == 0


async def test_a_soft_first_word_is_kept(engines):
    """Silero crosses its threshold a few windows into a soft onset; with 0.2 s of pre-roll these clips,
    each a session's first utterance (no earlier audio in front), lost their first word."""
    ids = ("ast-en-enter-num-blacklist", "ast-en-check-number-dial-again", "ast-en-dir-pls-enter",
           "ast-es-vm-incorrect")
    for clip in (c for c in manifest() if c.id in ids):
        audio = np.concatenate([load_audio(clip.path), np.zeros(16000, np.float32)])
        events = await run(engines, to_s16(audio), SessionConfig(source_language=clip.lang, partials=False))
        said = " ".join(e.text for e in finals(events))
        assert normalise(said).split()[:1] == normalise(clip.text).split()[:1], f"{clip.id}: {said!r}"


def content_words(text: str) -> set[str]:
    stop = {"the", "a", "an", "to", "of", "is", "your", "you", "and", "or", "for", "please", "this", "be", "in", "by"}
    return {w for w in re.findall(r"[a-z']+", normalise(text)) if w not in stop and len(w) > 2}


async def test_spanish_speech_is_translated_to_english_and_portuguese(engines):
    clips = [c for c in manifest() if c.lang == "es" and len(c.english.split()) >= 5][:4]
    shared = 0
    for clip in clips:
        audio = np.concatenate([load_audio(clip.path), np.zeros(16000, np.float32)])
        events = await run(engines, to_s16(audio), SessionConfig(source_language="es", targets=("en", "pt")))
        check_ordering(events, ["en", "pt"])
        english = " ".join(e.text for e in events if isinstance(e, TranslationEvent) and e.target == "en")
        portuguese = [e.text for e in events if isinstance(e, TranslationEvent) and e.target == "pt"]
        assert portuguese and all(portuguese), "es → en → pt pivot gave nothing"
        overlap = content_words(english) & content_words(clip.english)
        print(f"{clip.id}: {english!r} vs {clip.english!r}: {sorted(overlap)}")
        shared += bool(overlap)
    assert shared >= len(clips) - 1


async def test_bad_audio_fails_only_its_own_session(engines, dev_long):
    audio, _ = dev_long
    good = asyncio.create_task(run(engines, to_s16(audio[: 16000 * 12]), SessionConfig(source_language="en")))
    nan = np.full(1600, np.nan, np.float32).astype("<f4").tobytes()
    with pytest.raises(BadAudioError, match="NaN"):
        await run(engines, nan, SessionConfig(audio=AudioFormat("pcm_f32le"), source_language="en"))
    events = await good
    assert len(finals(events)) >= 2


async def test_typed_text_and_target_changes(engines, dev_long):
    audio, _ = dev_long
    session = Session(engines, SessionConfig(source_language="en", targets=("pt",)))
    data = to_s16(audio[: 16000 * 12])
    await session.feed_text("Good morning, how are you?", "en")
    for i in range(0, len(data) // 2, CHUNK_100MS):
        await session.feed_audio(data[i : i + CHUNK_100MS])
    await session.set_targets(["pt", "en"])
    for i in range(len(data) // 2 - (len(data) // 2) % CHUNK_100MS, len(data), CHUNK_100MS):
        await session.feed_audio(data[i : i + CHUNK_100MS])
    await session.stop()
    events = [e async for e in session.events()]
    await session.aclose()
    typed = finals(events)[0]
    assert typed.text == "Good morning, how are you?"
    first = [e for e in events if isinstance(e, TranslationEvent) and e.segment == typed.segment]
    assert [e.target for e in first] == ["pt"] and "bom dia" in first[0].text.lower()
    last = finals(events)[-1]
    assert sorted(e.target for e in events if isinstance(e, TranslationEvent) and e.segment == last.segment) == ["en", "pt"]


async def test_typed_text_in_an_unknown_language_is_detected(engines):
    async with Session(engines, SessionConfig(source_language="en", targets=("en",))) as session:
        await session.feed_text("Bom dia a todos.", "auto")
        await session.stop()
        events = [e async for e in session.events()]
    typed = finals(events)[0]
    assert typed.language == "pt"
    assert "good morning" in next(e.text for e in events if isinstance(e, TranslationEvent)).lower()


async def test_auto_language_detects_spanish_speech(engines):
    clips = [c for c in manifest() if c.lang == "es"][:10]
    detected = []
    for clip in clips:
        audio = np.concatenate([load_audio(clip.path), np.zeros(16000, np.float32)])
        events = await run(engines, to_s16(audio), SessionConfig(source_language="auto", partials=False))
        detected += [e.language for e in finals(events) if e.text]
    print("detected:", detected)
    # Whisper base on these 8 kHz telephone prompts: 26 of the first 30 clips are detected as Spanish.
    assert detected.count("es") >= 0.7 * len(detected) and len(detected) >= 8


async def test_auto_language_follows_the_session_and_its_switches(engines):
    """One session speaks twelve Spanish prompts, then four English ones. Alone, Whisper base names about
    a third of these Spanish utterances Italian or French; weighed by the session's earlier utterances,
    (almost) all are Spanish, and the English ones are English from the switch on."""
    clips = manifest()
    spanish = [c for c in clips if c.lang == "es"][20:32]
    english = [c for c in clips if c.lang == "en" and c.id.startswith("ast-")][10:14]
    gap = np.zeros(12_800, np.float32)
    parts = [piece for clip in spanish + english for piece in (load_audio(clip.path), gap)]
    switch_at = sum(p.size for p in parts[: 2 * len(spanish)]) / 16_000
    events = await run(engines, to_s16(np.concatenate(parts)), SessionConfig(source_language="auto", partials=False))
    said = [e for e in finals(events) if e.text]
    before = [e.language for e in said if e.end <= switch_at]
    after = [e.language for e in said if e.start >= switch_at]
    print("before the switch:", before, "after:", after)
    assert len(before) >= 10 and before.count("es") >= len(before) - 1
    assert len(after) >= 3 and set(after) == {"en"}


async def test_auto_language_chooses_among_the_languages_the_client_names(engines):
    """Six Spanish prompts, whose first Whisper base alone calls French (Spanish 0.06, English 0.045, a
    near tie) and whose second it calls Italian with 0.84: with Spanish and English named by the client,
    no utterance is French or Italian, and all but at most the first are Spanish."""
    spanish = [c for c in manifest() if c.lang == "es"][10:16]
    gap = np.zeros(12_800, np.float32)
    audio = np.concatenate([piece for clip in spanish for piece in (load_audio(clip.path), gap)])
    config = SessionConfig(source_language="auto", languages=("es", "en"), partials=False)
    said = [e.language for e in finals(await run(engines, to_s16(audio), config)) if e.text]
    assert len(said) >= 5 and set(said) <= {"es", "en"} and said[1:].count("es") == len(said) - 1


async def test_the_engines_count_the_sessions_open_on_them(engines):
    """A final may decode on every thread only while at most one session is open (``OpenSessions``, see
    ``devices.resolve_solo_beams_on_all_threads``): a session counts from its creation to its first
    ``aclose``; one refused at creation never counts."""
    before = engines.sessions.count
    first = Session(engines, SessionConfig(source_language="en"))
    async with Session(engines, SessionConfig(source_language="en")):
        assert engines.sessions.count == before + 2 and not engines.sessions.at_most_one()
    with pytest.raises(PipelineError):
        Session(engines, SessionConfig(source_language="xx"))
    await first.aclose()
    await first.aclose()
    assert engines.sessions.count == before
