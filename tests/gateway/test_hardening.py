"""Admission control, limits, auth, origins, backpressure, metrics and shutdown, on the real server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench.server import spawn_gateway
from gateway.admission import LatencyGate
from gateway.client import AudioLimits, StreamOptions, decode_file, frames_of, send_paced, stream_pcm
from gateway.limits import AudioRate
from tests.conftest import free_port, run_server, to_s16
from tests.gateway.metrics_text import sample_values
from tests.gateway.protocol_checks import check_guarantees
from tests.gateway.test_stream import START, expect_error, open_ws, recv_json


async def read_to_end(ws) -> list[dict]:
    """Every message up to and including ``end``."""
    messages = [await recv_json(ws)]
    while messages[-1]["type"] != "end":
        messages.append(await recv_json(ws))
    return messages


async def finish(ws) -> list[dict]:
    """Send stop and read to the end."""
    await ws.send(json.dumps({"type": "stop"}))
    return await read_to_end(ws)


async def closed_with(ws) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), 30)
    return closed.value.rcvd.code


@pytest.fixture
async def custom(engines, base_settings):
    """Start a server with some settings changed: ``async with custom(max_sessions=2) as srv``."""
    def start(**changes):
        return run_server(replace(base_settings, port=free_port(), **changes), engines)
    return start


async def test_over_capacity_session_gets_1013_and_the_others_finish(custom, dev_long):
    audio, _ = dev_long
    speech = to_s16(audio[int(16000 * 4.9) : int(16000 * 8.0)])
    async with custom(max_sessions=2) as srv:
        first, second = await open_ws(srv), await open_ws(srv)
        for ws in (first, second):
            await ws.send(json.dumps(START))
            assert (await recv_json(ws))["type"] == "ready"
        async with httpx.AsyncClient(base_url=srv.url, verify=srv.ssl) as http:
            assert (await http.get("/readyz")).json()["admitting"] is False
        async with await open_ws(srv) as third:
            await third.send(json.dumps(START))
            error = await expect_error(third, "overloaded", fatal=True)
            assert "limit of 2 sessions" in error["message"]
            assert await closed_with(third) == 1013
        for ws in (first, second):
            await ws.send(speech)
            messages = await finish(ws)
            assert any(m["type"] == "transcript" and m["final"] and "join" in m["text"] for m in messages)
            await ws.close()


async def read_finals(ws, count: int) -> None:
    """Read until ``count`` final transcripts have come."""
    finals = 0
    while finals < count:
        message = await recv_json(ws, timeout=60)
        finals += message["type"] == "transcript" and message["final"]


async def test_late_finals_close_admission_until_the_load_is_gone(custom, dev_long):
    """With a latency limit no decode can meet, a second session is refused while a real-time one runs,
    and the gate opens again once the server is idle. The limit itself is the behaviour, not a timing."""
    audio, _ = dev_long
    async with custom(admission_latency_s=0.01) as srv, httpx.AsyncClient(base_url=srv.url, verify=srv.ssl) as http:
        async with await open_ws(srv) as first:
            await first.send(json.dumps(START))
            assert (await recv_json(first))["type"] == "ready"
            sender = asyncio.create_task(send_paced(frames_of(to_s16(audio[: 16000 * 20]), 3200), first.send, []))
            await read_finals(first, 2)
            ready = (await http.get("/readyz")).json()
            assert ready["admitting"] is False and ready["final_latency_p90_s"] > 0.01, ready
            async with await open_ws(srv) as second:
                await second.send(json.dumps(START))
                error = await expect_error(second, "overloaded", fatal=True)
                assert "busy" in error["message"] and "limit 0.0 s" in error["message"], error
                assert await closed_with(second) == 1013
            sender.cancel()
            assert (await finish(first))[-1]["type"] == "end"
        for _ in range(200):
            if srv.state.sessions_active == 0:
                break
            await asyncio.sleep(0.05)
        idle = (await http.get("/readyz")).json()
        assert idle["admitting"] is True and idle["final_latency_p90_s"] is None, idle  # forgotten when idle
        async with await open_ws(srv) as third:
            await third.send(json.dumps(START))
            assert (await recv_json(third))["type"] == "ready"


async def test_a_client_sending_ahead_does_not_close_admission(custom, dev_long):
    """A file sent at once waits for its own backlog; its late finals are not the server's load."""
    audio, _ = dev_long
    async with custom(admission_latency_s=0.01) as srv:
        async with await open_ws(srv) as first:
            await first.send(json.dumps(START))
            assert (await recv_json(first))["type"] == "ready"
            await first.send(to_s16(audio[: 16000 * 20]))
            await read_finals(first, 2)
            assert srv.state.admission.p90() is None
            async with await open_ws(srv) as second:
                await second.send(json.dumps(START))
                assert (await recv_json(second))["type"] == "ready"
            assert (await finish(first))[-1]["type"] == "end"


def test_latency_gate_needs_recent_late_finals_and_running_sessions():
    now = [0.0]
    gate = LatencyGate(limit_s=2.0, window_s=30.0, min_samples=3, clock=lambda: now[0])
    for latency in (3.0, 3.5):
        gate.record(latency)
    assert gate.refusal(active_sessions=1) is None  # two finals say nothing yet
    gate.record(0.5)
    assert gate.p90() == 3.5 and "3.5 s" in gate.refusal(active_sessions=1)
    assert gate.refusal(active_sessions=0) is None  # an idle server always admits
    now[0] = 31.0
    assert gate.p90() is None and gate.refusal(active_sessions=1) is None  # the late finals are old news
    for _ in range(9):
        gate.record(1.0)
    gate.record(9.0)
    assert gate.p90() == 1.0  # one slow final in ten is within p90
    gate.record(9.0)
    assert gate.p90() == 9.0
    gate.clear()
    assert gate.p90() is None
    assert LatencyGate(limit_s=0).refusal(active_sessions=5) is None  # 0 turns it off


async def test_foreign_origin_is_refused_same_and_allowed_pass(custom):
    async with custom(allow_origins=("https://app.example",)) as srv:
        host = srv.url.removeprefix("https://")
        for origin, allowed in ((f"https://{host}", True), ("https://app.example", True),
                                ("https://evil.example", False)):
            async with await open_ws(srv, origin=origin) as ws:
                await ws.send(json.dumps(START))
                if allowed:
                    assert (await recv_json(ws))["type"] == "ready"
                else:
                    await expect_error(ws, "forbidden_origin", fatal=True)
                    assert await closed_with(ws) == 1008


async def test_tokens(custom):
    async with custom(tokens=("s3cret",)) as srv:
        for query, headers, ok in (("", None, False), ("?token=wrong", None, False),
                                   ("", {"Authorization": "Bearer nope"}, False),
                                   ("?token=s3cret", None, True), ("", {"Authorization": "Bearer s3cret"}, True)):
            async with await open_ws(srv, query, additional_headers=headers) as ws:
                await ws.send(json.dumps(START))
                if ok:
                    assert (await recv_json(ws))["type"] == "ready"
                else:
                    error = await expect_error(ws, "unauthorized", fatal=True)
                    assert "Bearer" in error["message"]
                    assert await closed_with(ws) == 1008
        body = {"text": "Hello.", "source_language": "en", "targets": ["pt"]}
        async with httpx.AsyncClient(base_url=srv.url, verify=srv.ssl) as http:
            assert (await http.post("/v1/translate", json=body)).status_code == 401
            assert (await http.post("/v1/translate?token=s3cret", json=body)).status_code == 200
            authorized = await http.post("/v1/translate", json=body, headers={"Authorization": "Bearer s3cret"})
            assert authorized.status_code == 200


async def test_connections_per_client_are_limited(custom):
    async with custom(max_connections_per_client=2) as srv:
        held = [await open_ws(srv), await open_ws(srv)]
        async with await open_ws(srv) as extra:
            error = await expect_error(extra, "overloaded", fatal=True)
            assert "too many connections" in error["message"]
        for ws in held:
            await ws.close()


async def test_fast_sender_is_told_and_others_stay_responsive(custom, dev_long):
    """A 2 s burst (the default is 30 s): the gateway reads a client only as fast as its session takes the
    audio, so with a long burst a slow CPU (an AMD EPYC VM in CI) never saw more than 2x real time."""
    audio, _ = dev_long
    data = to_s16(audio[: 16000 * 90])  # 90 s of audio pushed at ~20x real time
    async with custom(audio_burst_s=2.0) as server, await open_ws(server) as fast:
        await fast.send(json.dumps(START))
        await recv_json(fast)
        sender_started = time.monotonic()
        for i in range(0, len(data), 3200):
            await fast.send(data[i : i + 3200])
            await asyncio.sleep(max(0.0, sender_started + i / 32000 / 20 - time.monotonic()))
        # meanwhile another client is served promptly
        async with httpx.AsyncClient(base_url=server.url, verify=server.ssl) as http:
            asked = time.monotonic()
            response = await http.post("/v1/translate", json={"text": "Hello.", "source_language": "en",
                                                              "targets": ["pt"]})
            assert response.status_code == 200 and time.monotonic() - asked < 30
        messages = await finish(fast)
    too_fast = [m for m in messages if m["type"] == "error" and m["code"] == "too_fast"]
    assert too_fast and not too_fast[0]["fatal"] and "real time" in too_fast[0]["message"]
    end = messages[-1]
    assert end["audio_seconds"] < 80  # excess audio was rejected, not buffered


@pytest.mark.parametrize(("rate", "burst_s"), [(2.0, 30.0), (3.0, 5.0), (1.5, 0.5)])
def test_audio_paced_to_the_announced_limits_fits_the_servers_bucket_even_after_a_stall(rate, burst_s):
    """The client's schedule against the gateway's own bucket, on a simulated clock: frames arriving when
    due all fit, and so do frames held up by a stall (a backlog waiting in TCP while the session was busy)
    that then arrive at once, at the start or later, for as long a stall as the client's margins allow."""
    limits, frame_s = AudioLimits(rate, burst_s), 0.1
    stall_s = 0.99 * limits.burst_share * burst_s / (limits.rate_share * rate)
    now = [0.0]
    for stall_from in (None, 0.0, 40.0):
        now[0] = 0.0
        bucket = AudioRate(rate, burst_s, clock=lambda: now[0])
        for i in range(3000):  # 300 s of audio in 100 ms frames
            due = limits.earliest_send((i + 1) * frame_s)
            stalled = stall_from is not None and stall_from <= due < stall_from + stall_s
            now[0] = max(now[0], stall_from + stall_s if stalled else due)
            assert bucket.take(frame_s), (stall_from, i)
    # The same frames sent as fast as they go overrun it: the bucket is what the schedule keeps to.
    bucket = AudioRate(rate, burst_s, clock=lambda: 0.0)
    assert not all(bucket.take(frame_s) for _ in range(3000))


async def test_a_client_sending_ahead_within_the_announced_limits_loses_no_audio(custom, dev_long):
    """``ready`` announces the limits; the reference client sending ahead of real time keeps to them, so the
    gateway takes every frame (no ``too_fast``) and the session hears the whole clip."""
    audio, _ = dev_long
    seconds = 30
    async with custom(audio_burst_s=15.0, max_audio_rate=2.0) as srv:
        run = await stream_pcm(srv.ws_url, to_s16(audio[: 16000 * seconds]),
                               StreamOptions(source_language="en", realtime=False), srv.ssl)
    ready = run.of_type("ready")[0]
    assert ready["limits"] == {"max_frame_bytes": 1 << 20, "max_audio_rate": 2.0, "audio_burst_s": 15.0,
                               "idle_timeout_s": 60.0, "max_session_s": 4 * 3600.0}
    assert run.errors() == [] and run.close_code == 1000
    assert run.of_type("end")[0]["audio_seconds"] == pytest.approx(seconds, abs=0.01)
    assert len(run.finals()) >= 3
    # it did send ahead, and no faster than its schedule
    wall = run.sent[-1] - run.sent[0]
    assert AudioLimits(2.0, 15.0).earliest_send(seconds) - 0.5 <= wall < seconds


async def test_slow_reader_gets_every_final_and_memory_stays_bounded(custom, dev_long):
    audio, meta = dev_long
    seconds = 28
    data = to_s16(audio[: 16000 * seconds])
    async with custom(max_pending_messages=50) as srv:
        rss_before = _rss_mb()
        async with await open_ws(srv, max_queue=1) as ws:  # the client library buffers almost nothing
            await ws.send(json.dumps({**START, "targets": ["pt", "en"]}))
            for i in range(0, len(data), 3200):
                await ws.send(data[i : i + 3200])
            await ws.send(json.dumps({"type": "stop"}))
            largest = 0
            for _ in range(100):  # read nothing for 10 s
                for connection in list(srv.state.live_sessions):
                    largest = max(largest, len(connection.outbox))
                await asyncio.sleep(0.1)
            messages = await read_to_end(ws)
    check_guarantees(messages, ["pt", "en"])
    utterances = [u for u in meta["utterances"] if u["end"] < seconds - 0.5]
    finals = [m for m in messages if m["type"] == "transcript" and m["final"] and m["text"]]
    assert len(finals) >= len(utterances) - 1
    assert largest <= 50
    assert _rss_mb() - rss_before < 200


def _rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")) / 1024


async def test_idle_session_is_finished_cleanly(custom, dev_long):
    audio, _ = dev_long
    async with custom(idle_timeout_s=1.5) as srv:
        async with await open_ws(srv) as ws:
            await ws.send(json.dumps(START))
            await recv_json(ws)
            await ws.send(to_s16(audio[int(16000 * 4.9) : int(16000 * 8.0)]))
            messages = await read_to_end(ws)
            assert await closed_with(ws) == 1000
    idle = [m for m in messages if m["type"] == "error"]
    assert idle[0]["code"] == "idle_timeout" and not idle[0]["fatal"]
    assert any(m["type"] == "transcript" and m["final"] and "join" in m["text"] for m in messages)


async def test_session_length_is_limited(custom, dev_long):
    audio, _ = dev_long
    async with custom(max_session_s=3.0) as srv:
        async with await open_ws(srv) as ws:
            await ws.send(json.dumps(START))
            await recv_json(ws)
            data = to_s16(audio[: 16000 * 6])
            for i in range(0, len(data), 3200):
                await ws.send(data[i : i + 3200])
            messages = await read_to_end(ws)
    codes = [m["code"] for m in messages if m["type"] == "error"]
    assert codes[0] == "session_too_long"
    assert messages[-1]["audio_seconds"] < 4.5


async def test_metrics_move_during_a_session(server, dev_long):
    audio, _ = dev_long

    async def scrape() -> dict[str, float]:
        async with httpx.AsyncClient(base_url=server.url, verify=server.ssl) as http:
            return sample_values((await http.get("/metrics")).text)

    before = await scrape()
    # in real time, so that the session is alive (and decoding partials) while it is scraped
    run_task = asyncio.create_task(stream_pcm(server.ws_url, to_s16(audio[: 16000 * 12]),
                                              StreamOptions(targets=("pt",), source_language="en", realtime=True),
                                              server.ssl))
    during = {}
    for _ in range(100):
        await asyncio.sleep(0.2)
        during = await scrape()
        if during.get("gateway_sessions_active", 0) >= 1 and during.get('gateway_stage_seconds_count{stage="asr_partial"}', 0) > before.get('gateway_stage_seconds_count{stage="asr_partial"}', 0):
            break
    await run_task
    after = await scrape()
    assert during["gateway_sessions_active"] >= 1
    assert after["gateway_sessions_started_total"] > before.get("gateway_sessions_started_total", 0)
    assert after["gateway_audio_seconds_total"] >= before.get("gateway_audio_seconds_total", 0) + 11
    for stage in ("ingest", "asr_partial", "asr_final", "mt", "final_latency"):
        key = f'gateway_stage_seconds_count{{stage="{stage}"}}'
        assert after[key] > before.get(key, 0), stage
    assert 'gateway_queue_depth{worker="asr"}' in after and after["gateway_models_loaded"] == 1
    lanes = server.state.engines.asr_worker.lanes
    assert after['gateway_worker_lanes{worker="asr"}'] == lanes
    assert 0 <= after['gateway_worker_busy_lanes{worker="asr"}'] <= lanes


@pytest.mark.slow
def test_sigterm_mid_session_sends_pending_finals_and_exits_zero(speech_dir, tmp_path):
    audio = decode_file(speech_dir / "en-dev-long.flac")[: 32000 * 14]
    with spawn_gateway(["--model", "tiny.en", "--shutdown-grace-s", "20"], log_path=tmp_path / "log") as gw:
        async def scenario():
            task = asyncio.create_task(stream_pcm(gw.url, audio, StreamOptions(targets=("pt",)), gw.ssl_context()))
            await asyncio.sleep(10.5)  # in the middle of "Press 4 to place an outgoing call" (8.6-11.5 s)
            os.kill(gw.pid, signal.SIGTERM)
            signalled = time.monotonic()
            run = await task
            return run, signalled

        run, signalled = asyncio.run(scenario())
        gw.process.wait(timeout=40)
        exited = time.monotonic() - signalled
        assert gw.process.returncode == 0 and exited < 20 + 15
    messages = [r.message for r in run.received]
    check_guarantees(messages, ["pt"])
    going_away = [m for m in messages if m["type"] == "error"]
    assert going_away and going_away[0]["code"] == "going_away" and not going_away[0]["fatal"]
    assert run.close_code == 1001
    finals = [m["text"] for m in messages if m["type"] == "transcript" and m["final"]]
    assert any(f.lower().startswith("press 4") for f in finals), finals  # the segment cut by the signal


def test_tokens_never_reach_the_logs(tmp_path):
    log = tmp_path / "gateway.log"
    with spawn_gateway(["--model", "tiny.en", "--token", "s3cret-value"], log_path=log) as gw:
        async def connect_with_token():
            async with connect(gw.url + "?token=s3cret-value", ssl=gw.ssl_context()) as ws:
                await ws.send(json.dumps(START | {"targets": []}))
                assert json.loads(await ws.recv())["type"] == "ready"
        asyncio.run(connect_with_token())
    text = log.read_text()
    assert "/v1/stream" in text and "<redacted>" in text
    assert "s3cret-value" not in text
