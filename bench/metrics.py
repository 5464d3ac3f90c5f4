"""Latency and accuracy arithmetic on a recorded stream (frame send times + message arrival times)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


class RecordedStream(Protocol):
    sent: list[float]  # send time of each frame
    chunk_seconds: float
    received: list[Any]  # items with .at and .message


def percentiles(values: list[float]) -> dict[str, float]:
    """n, median, p90, p99 and max (NaN when empty)."""
    if not values:
        return {"n": 0, "p50": math.nan, "p90": math.nan, "p99": math.nan, "max": math.nan}
    arr = np.asarray(values, dtype=float)
    return {"n": len(values), "p50": float(np.percentile(arr, 50)), "p90": float(np.percentile(arr, 90)),
            "p99": float(np.percentile(arr, 99)), "max": float(arr.max())}


def frame_time(sent: list[float], chunk_seconds: float, audio_time: float, first: bool = False) -> float:
    """Wall time at which the audio up to ``audio_time`` had been sent, from each frame's send time: the
    frame that completes it, or with ``first`` the frame in which that moment begins. Every bench counts an
    utterance's latency from here, the moment the server could have its audio."""
    position = audio_time / chunk_seconds
    index = math.floor(position + 1e-6) if first else math.ceil(position - 1e-6) - 1
    return sent[min(len(sent) - 1, max(0, index))]


def frame_sent_at(stream: RecordedStream, audio_time: float, first: bool = False) -> float:
    """``frame_time`` of a recorded stream."""
    return frame_time(stream.sent, stream.chunk_seconds, audio_time, first)


@dataclass
class LatencyReport:
    final: list[float] = field(default_factory=list)
    first_partial: list[float] = field(default_factory=list)
    translation: dict[str, list[float]] = field(default_factory=dict)
    missed_utterances: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, dict[str, float]]:
        rows = {"final": percentiles(self.final), "first_partial": percentiles(self.first_partial)}
        rows.update({f"translation_{t}": percentiles(v) for t, v in self.translation.items()})
        return rows

    def table(self) -> str:
        lines = [f"{'latency (s)':<18}{'n':>5}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}"]
        for name, s in self.summary().items():
            lines.append(f"{name:<18}{s['n']:>5}{s['p50']:>8.3f}{s['p90']:>8.3f}{s['p99']:>8.3f}{s['max']:>8.3f}")
        return "\n".join(lines)


def _overlaps(message: dict[str, Any], utterance: dict[str, Any]) -> bool:
    return message["start"] < utterance["end"] and message["end"] > utterance["start"] and bool(message["text"])


def latency_report(stream: RecordedStream, utterances: list[dict[str, Any]]) -> LatencyReport:
    """Per-utterance latencies of one stream.

    final: arrival of the last final transcript overlapping the utterance minus the send time of the
    utterance's last frame. first_partial: arrival of the first transcript message overlapping it minus
    the send time of its first frame. translation: arrival of a segment's translation minus the arrival of
    its final transcript, per target.
    """
    report = LatencyReport()
    transcripts = [(r.at, r.message) for r in stream.received if r.message.get("type") == "transcript"]
    finals = [(at, m) for at, m in transcripts if m["final"]]
    for utterance in utterances:
        covering = [(at, m) for at, m in finals if _overlaps(m, utterance)]
        if not covering:
            report.missed_utterances.append(utterance.get("id", str(utterance["start"])))
            continue
        report.final.append(max(at for at, _ in covering) - frame_sent_at(stream, utterance["end"]))
        first = next(at for at, m in transcripts if _overlaps(m, utterance))
        report.first_partial.append(first - frame_sent_at(stream, utterance["start"], first=True))
    final_at = {m["segment"]: at for at, m in finals}
    for r in stream.received:
        m = r.message
        if m.get("type") == "translation" and m["segment"] in final_at:
            report.translation.setdefault(m["target"], []).append(r.at - final_at[m["segment"]])
    return report
