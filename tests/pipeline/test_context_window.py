"""Which earlier speech a final is decoded with: Whisper's segments of the finals before it, so that a
long utterance cut at ``max_segment_s`` still gets the end of the piece before it as context."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import EngineConfig, Session, SessionConfig
from pipeline.asr import DecodeOptions, DecodeRequest, Generation, TimedText
from pipeline.engines import load_asr_engine
from pipeline.segmenter import Action, ActionKind
from pipeline.session import _Known
from tests.pipeline.test_decode_guards import _generation, _timed_plan

RATE = 16_000


def test_timestamp_mode_decodes_give_their_segments():
    asr, _ = load_asr_engine(EngineConfig(asr_model="tiny.en"))
    plan = _timed_plan(asr)  # 10 s of audio, 0-3 s forced as known text
    generation = _generation(plan, 3.5, "Dial one.", 5.0, "Dial two.", 6.5, 6.6, "Dial three")
    assert asr._result(plan, generation).segments == (
        TimedText(3.5, 5.0, "Dial one."), TimedText(5.0, 6.5, "Dial two."),  # a shared timestamp
        TimedText(6.6, 10.0, "Dial three"),  # left open: runs to the end of the audio
    )
    plain = asr._plan(DecodeRequest(np.zeros(RATE, np.float32), DecodeOptions(language="en")), "en", 1.0)
    words = Generation(plain.prompt.tokens[plain.prompt.prefix_start:] + plain.tokenizer.encode(" Hello."), -0.1, 0.0)
    assert asr._result(plain, words).continuation == "Hello." and asr._result(plain, words).segments == ()


def test_a_final_is_cut_into_pieces_between_its_segments():
    known = _Known(10.0, 20.0, (TimedText(10.3, 14.0, "One."), TimedText(14.4, 17.0, "Two."),
                                TimedText(17.6, 21.0, "Three.")))
    assert known.pieces() == [
        TimedText(10.0, 14.2, "One."),  # from the utterance's start
        TimedText(14.2, 17.3, "Two."),  # cut midway between two segments
        TimedText(17.3, 20.0, "Three."),  # up to the utterance's end, not past it
    ]
    assert _Known(3.0, 4.0, ()).pieces() == []


def _candidate(utterance: int, start: float, end: float, context_s: float) -> Action:
    audio_start = max(0.0, start - context_s)
    audio = np.zeros(round((end - audio_start) * RATE), np.float32)
    return Action(ActionKind.CANDIDATE, utterance, start, end, audio, offset=round((start - audio_start) * RATE))


async def test_the_context_takes_the_segments_that_fit_back_to_a_final_without_text(engines):
    session = Session(engines, SessionConfig(source_language="en"))
    try:
        session._known = {
            0: _Known(0.5, 4.0, (TimedText(0.6, 3.9, "Before the gap."),)),
            1: _Known(5.0, 7.0, ()),  # a final without text: nothing before it is known to match its audio
            2: _Known(8.0, 28.0, (TimedText(8.1, 15.0, "A."), TimedText(15.2, 22.0, "B."), TimedText(22.4, 28.0, "C."))),
        }
        # Utterance 3 goes on from the cut at 28 s: its 10 s of context reach back to 18 s, where "B." has
        # begun, so the audio is cut between "B." and "C." and "C." is its context.
        window = session._with_context(_candidate(3, 28.0, 35.0, context_s=10.0))
        assert window.start == pytest.approx(22.2) and window.audio.size == round((35.0 - 22.2) * RATE)
        assert [t.text for t in window.timed] == ["C."]
        assert (window.timed[0].start, window.timed[0].end) == pytest.approx((0.0, 5.8))
        # With 20 s, all of utterance 2 from its start, and nothing from before its final without text.
        wide = session._with_context(_candidate(3, 28.0, 35.0, context_s=20.0))
        assert [t.text for t in wide.timed] == ["A.", "B.", "C."] and wide.start == pytest.approx(8.0)
        # Utterance 2 itself: the final without text in front stops its context.
        assert session._with_context(_candidate(2, 8.0, 28.0, context_s=10.0)).timed == ()
        alone = session._with_context(_candidate(4, 40.0, 42.0, context_s=10.0))  # 12 s after any final
        assert alone.start == 40.0 and alone.timed == () and alone.audio.size == 2 * RATE
    finally:
        await session.aclose()


@pytest.mark.parametrize("context_s", [0.0, 7.0])
def test_candidates_carry_up_to_context_s_of_earlier_audio(dev_long, context_s):
    from pipeline.segmenter import StreamingConfig, UtteranceTracker
    from pipeline.vad import SileroVadModel

    audio, _ = dev_long
    tracker = UtteranceTracker(SileroVadModel().open_stream(), StreamingConfig(context_s=context_s))
    actions = tracker.push(audio[: 20 * RATE]) + tracker.flush()
    candidates = [a for a in actions if a.kind is ActionKind.CANDIDATE]
    assert len({a.utterance for a in candidates}) >= 3
    in_front = [(a.offset - a.lead_in) / RATE for a in candidates]  # audio before the utterance's pre-roll
    if context_s == 0:
        assert in_front == [0.0] * len(candidates)
    else:
        assert all(a.offset / RATE <= context_s for a in candidates)
        assert max(in_front) > 2.0  # earlier utterances' speech
