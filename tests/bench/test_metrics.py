"""The benchmark's latency arithmetic on a recorded message log, with exact numbers."""

from __future__ import annotations

import json
import math

import pytest

from bench.loadgen import cut_between_utterances, recording_span
from bench.metrics import frame_sent_at, latency_report, percentiles
from bench.pipeline_bench import final_delays
from gateway.client import Received, StreamRun


def recorded() -> StreamRun:
    # 100 ms frames sent every 0.1 s from t=1000.0: frame i (audio [0.1 i, 0.1 (i+1))) at 1000.0 + 0.1 i
    run = StreamRun(sent=[1000.0 + 0.1 * i for i in range(60)], chunk_seconds=0.1)
    log = [
        (1000.95, {"type": "transcript", "segment": 0, "final": False, "text": "hello", "stable": "", "start": 0.3, "end": 0.9}),
        (1001.60, {"type": "transcript", "segment": 0, "final": True, "text": "hello there", "stable": "hello there", "start": 0.3, "end": 1.4}),
        (1001.62, {"type": "translation", "segment": 0, "target": "pt", "final": True, "text": "olá"}),
        (1002.90, {"type": "transcript", "segment": 1, "final": False, "text": "", "stable": "", "start": 2.0, "end": 2.5}),
        (1003.10, {"type": "transcript", "segment": 1, "final": False, "text": "how", "stable": "", "start": 2.0, "end": 2.9}),
        (1004.80, {"type": "transcript", "segment": 1, "final": True, "text": "how are you", "stable": "how are you", "start": 2.0, "end": 4.2}),
        (1004.85, {"type": "translation", "segment": 1, "target": "pt", "final": True, "text": "como vai"}),
    ]
    run.received = [Received(at, m) for at, m in log]
    return run


UTTERANCES = [
    {"id": "a", "start": 0.5, "end": 1.2},
    {"id": "b", "start": 2.2, "end": 4.0},
    {"id": "never", "start": 5.0, "end": 5.5},
]


def test_frame_send_time_is_the_frame_holding_that_audio():
    run = recorded()
    assert frame_sent_at(run, 1.2) == pytest.approx(1001.1)  # audio up to 1.2 s is complete with frame 11
    assert frame_sent_at(run, 1.25) == pytest.approx(1001.2)
    assert frame_sent_at(run, 0.0) == pytest.approx(1000.0)
    assert frame_sent_at(run, 2.2, first=True) == pytest.approx(1002.2)  # audio 2.2 s begins in frame 22
    assert frame_sent_at(run, 2.25, first=True) == pytest.approx(1002.2)
    assert frame_sent_at(run, 99.0) == pytest.approx(1005.9)  # past the end: the last frame


def test_latencies_per_utterance():
    report = latency_report(recorded(), UTTERANCES)
    # a: final at 1001.60, last frame (audio 1.1-1.2) sent at 1001.1; first text at 1000.95, first frame 1000.5
    # b: final at 1004.80, last frame sent at 1003.9; first non-empty text at 1003.10, first frame 1002.2
    assert report.final == pytest.approx([0.5, 0.9])
    assert report.first_partial == pytest.approx([0.45, 0.9])
    assert report.translation["pt"] == pytest.approx([0.02, 0.05])
    assert report.missed_utterances == ["never"]


def test_in_process_benches_count_final_latency_as_the_wss_bench_does():
    run = recorded()
    finals = [(r.at, r.message["start"], r.message["end"], r.message["text"]) for r in run.received
              if r.message["type"] == "transcript" and r.message["final"]]
    assert final_delays(UTTERANCES, finals, run.sent) == pytest.approx([0.5, 0.9])
    late = [t + 0.05 * (i >= 12) for i, t in enumerate(run.sent)]  # feeding fell behind from frame 12 on
    assert final_delays(UTTERANCES, finals, late) == pytest.approx([0.5, 0.85])


def test_percentiles():
    s = percentiles([1.0, 2.0, 3.0, 4.0, 10.0])
    assert s == {"n": 5, "p50": 3.0, "p90": pytest.approx(7.6), "p99": pytest.approx(9.76), "max": 10.0}
    assert math.isnan(percentiles([])["p50"])


def test_a_recording_is_cut_between_utterances():
    utterances = [{"start": 0.5, "end": 2.0}, {"start": 3.0, "end": 5.0}]
    assert cut_between_utterances(utterances, 4.0) == 3.0  # inside the second: cut before it
    assert cut_between_utterances(utterances, 2.5) == 2.5  # in a gap: as asked
    assert cut_between_utterances(utterances, 9.0) == 9.0


def test_a_recording_span_holds_the_utterances_before_its_cut(tmp_path):
    recording = tmp_path / "talk.flac"
    recording.with_suffix(".json").write_text(json.dumps({"utterances": [
        {"start": 0.5, "end": 2.0}, {"start": 3.0, "end": 5.0}]}))
    assert recording_span(recording, 4.0, 6.0) == (3.0, [{"start": 0.5, "end": 2.0}])
    assert recording_span(recording, None, 6.0) == (6.0, [{"start": 0.5, "end": 2.0}, {"start": 3.0, "end": 5.0}])
    assert recording_span(recording, 9.0, 6.0)[0] == 6.0  # never past the audio
    assert recording_span(tmp_path / "bare.flac", 4.0, 6.0) == (4.0, [])  # no JSON: no utterances
