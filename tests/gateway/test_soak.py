"""Soak: one session streaming for 10 minutes keeps the server's memory flat."""

from __future__ import annotations

import asyncio

import pytest

from bench.server import ProcessSampler, spawn_gateway
from gateway.client import BYTES_PER_SECOND, StreamOptions, decode_file, stream_pcm

SOAK_SECONDS = 600


@pytest.mark.slow
def test_ten_minute_session_keeps_rss_flat(speech_dir):
    recording = decode_file(speech_dir / "en-dev-long.flac")
    loops = SOAK_SECONDS * BYTES_PER_SECOND // len(recording) + 1
    audio = (recording * loops)[: SOAK_SECONDS * BYTES_PER_SECOND]
    with spawn_gateway(["--model", "base"]) as gw:
        sampler = ProcessSampler(gw.pid, interval=5.0).start()
        try:
            run = asyncio.run(stream_pcm(gw.url, audio, StreamOptions(targets=("pt",), source_language="en"),
                                         gw.ssl_context()))
        finally:
            sampler.stop()
    t0 = sampler.samples[0][0]
    curve = [(round(t - t0), round(rss / 2**20)) for t, _, rss in sampler.samples]
    print("\nRSS curve (s, MB):", curve[::6])
    assert run.close_code == 1000 and len(run.finals()) > 80
    # The level after the first minute: the RSS between decodes (its floor over the second minute).
    # A leak raises that floor. Each final decode adds a working set of ~110 MB for well under a second
    # (the encoder's attention over a 30 s window; the ASR worker hands it back to the OS after each
    # batch), which must stay bounded too: measured up to +155 MB.
    level = min(rss for t, rss in curve if 60 <= t < 120)
    late_floor = min(rss for t, rss in curve if t >= SOAK_SECONDS - 120)
    assert late_floor - level < 100, curve
    assert max(rss for t, rss in curve if t >= 60) - level < 200, curve
