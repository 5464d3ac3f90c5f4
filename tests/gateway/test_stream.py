"""The real gateway over real TLS, driven by real WebSocket clients."""

from __future__ import annotations

import asyncio
import base64
import json
import threading

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gateway.client import StreamOptions, stream_pcm
from tests.conftest import to_s16
from tests.gateway.protocol_checks import check_guarantees


async def open_ws(server, query: str = "", **kwargs):
    return await connect(server.ws_url + query, ssl=server.ssl, max_size=None, **kwargs)


async def recv_json(ws, timeout: float = 30) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


START = {"type": "start", "audio": {"encoding": "pcm_s16le", "sample_rate": 16000, "channels": 1},
         "source_language": "en", "targets": ["pt"]}


# en-dev-long in real time, with every guarantee and the WER bound: tests/gateway/test_soak.py (its
# first pass), since a real-time stream is the costliest thing CI runs.


async def test_four_sessions_at_once_stay_correct(server, dev_long):
    audio, _ = dev_long
    pieces = [to_s16(audio[16000 * s : 16000 * (s + 25)]) for s in (0, 30, 60, 120)]
    runs = await asyncio.gather(*(
        stream_pcm(server.ws_url, piece, StreamOptions(targets=("pt",), source_language="en", realtime=False),
                   server.ssl)
        for piece in pieces
    ))
    for run in runs:
        check_guarantees([r.message for r in run.received], ["pt"])
        assert len(run.finals()) >= 2 and run.close_code == 1000


async def test_disconnect_mid_stream_leaves_nothing_behind(server, dev_long):
    audio, _ = dev_long
    await asyncio.sleep(0.5)
    tasks_before = len(asyncio.all_tasks())
    threads_before = threading.active_count()
    for _ in range(3):
        ws = await open_ws(server)
        await ws.send(json.dumps(START))
        assert (await recv_json(ws))["type"] == "ready"
        data = to_s16(audio[: 16000 * 6])
        for i in range(0, len(data), 3200):
            await ws.send(data[i : i + 3200])
        ws.transport.abort()  # vanish without a closing handshake
    for _ in range(200):
        if server.state.sessions_active == 0 and len(asyncio.all_tasks()) <= tasks_before:
            break
        await asyncio.sleep(0.05)
    assert server.state.sessions_active == 0
    assert len(asyncio.all_tasks()) <= tasks_before, [t.get_name() for t in asyncio.all_tasks()]
    assert threading.active_count() <= threads_before + 1  # the default executor may add one thread


async def expect_error(ws, code: str, fatal: bool) -> dict:
    message = await recv_json(ws)
    assert message["type"] == "error" and message["code"] == code and message["fatal"] is fatal, message
    assert len(message["message"]) > 10
    return message


@pytest.mark.parametrize("payload,fragment", [
    ("{not json", "JSON"),
    (json.dumps({"type": "dance"}), "start, audio, config, text, stop"),
    (json.dumps({**START, "audio": {"encoding": "pcm_s16le", "sample_rate": "fast"}}), "sample_rate"),
    (json.dumps({**START, "targets": "pt"}), "targets"),
    (b"\x00\x01" * 100, "before 'start'"),
])
async def test_bad_messages_get_a_non_fatal_error_and_the_session_still_starts(server, payload, fragment):
    async with await open_ws(server) as ws:
        await ws.send(payload)
        error = await expect_error(ws, "bad_message", fatal=False)
        assert fragment in error["message"]
        await ws.send(json.dumps(START))
        assert (await recv_json(ws))["type"] == "ready"
        await ws.send(json.dumps({"type": "nonsense"}))
        await expect_error(ws, "bad_message", fatal=False)
        await ws.send(json.dumps({"type": "stop"}))
        assert (await recv_json(ws))["type"] == "end"


@pytest.mark.parametrize("start,code,close_code", [
    ({**START, "audio": {"encoding": "mp3"}}, "bad_message", None),
    ({**START, "audio": {"encoding": "pcm_s16le", "sample_rate": 96000}}, "unsupported_audio", 1003),
    ({**START, "audio": {"encoding": "pcm_s16le", "channels": 8}}, "unsupported_audio", 1003),
    ({**START, "source_language": "xx"}, "unsupported_language", 1008),
    ({**START, "source_language": "auto", "languages": ["es", "xx"]}, "unsupported_language", 1008),
    ({**START, "targets": ["de"]}, "translation_unavailable", 1008),
])
async def test_unsupported_start_is_refused_with_a_close_code(server, start, code, close_code):
    async with await open_ws(server) as ws:
        await ws.send(json.dumps(start))
        error = await expect_error(ws, code, fatal=close_code is not None)
        if close_code is None:  # a schema error: the client may correct itself
            assert "pcm_s16le" in error["message"]
            return
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd.code == close_code


async def test_bad_audio_closes_that_session_only(server, dev_long):
    audio, _ = dev_long
    good = asyncio.create_task(stream_pcm(server.ws_url, to_s16(audio[: 16000 * 10]),
                                          StreamOptions(source_language="en", realtime=False), server.ssl))
    async with await open_ws(server) as ws:
        await ws.send(json.dumps({**START, "audio": {"encoding": "pcm_f32le", "sample_rate": 16000}}))
        assert (await recv_json(ws))["type"] == "ready"
        await ws.send(np.full(1600, np.nan, "<f4").tobytes())
        await expect_error(ws, "bad_audio", fatal=True)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd.code == 1003
    run = await good
    assert run.close_code == 1000 and run.finals()


async def test_too_large_frame_closes_with_1009(server):
    async with await open_ws(server) as ws:
        await ws.send(json.dumps(START))
        await recv_json(ws)
        await ws.send(b"\x00" * (server.state.settings.max_frame_bytes + 1))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await ws.recv()
        assert closed.value.rcvd.code == 1009


async def test_query_parameters_start_the_session_and_base64_audio_works(server, dev_long):
    audio, _ = dev_long
    data = to_s16(audio[int(16000 * 21.3) : int(16000 * 28)])
    # Regional tags, as navigator.language gives them, are served by their language.
    query = "?encoding=pcm_s16le&sample_rate=16000&source_language=auto&languages=en-US,pt_BR&targets=pt-BR,pt-PT"
    async with await open_ws(server, query) as ws:
        ready = await recv_json(ws)
        assert ready["type"] == "ready" and ready["targets"] == ["pt"] and ready["languages"] == ["en", "pt"]
        for i in range(0, len(data), 6400):
            await ws.send(json.dumps({"type": "audio", "data": base64.b64encode(data[i : i + 6400]).decode()}))
        await ws.send(json.dumps({"type": "text", "text": "Thank you very much.", "source_language": "auto"}))
        await ws.send(json.dumps({"type": "stop"}))
        messages = [ready]
        while messages[-1]["type"] != "end":
            messages.append(await recv_json(ws))
    check_guarantees(messages, ["pt"])
    finals = [m["text"] for m in messages if m["type"] == "transcript" and m["final"]]
    assert "password" in finals[0].lower() and finals[-1] == "Thank you very much."
    assert {m["language"] for m in messages if m["type"] == "transcript" and m["final"]} == {"en"}
    assert any("obrigado" in m["text"].lower() for m in messages if m["type"] == "translation")


async def test_config_changes_targets_mid_stream(server):
    async with await open_ws(server) as ws:
        await ws.send(json.dumps(START))
        await recv_json(ws)
        await ws.send(json.dumps({"type": "config", "targets": ["pt", "en"]}))
        await ws.send(json.dumps({"type": "config", "targets": ["klingon"]}))
        await expect_error(ws, "unsupported_language", fatal=False)
        await ws.send(json.dumps({"type": "text", "text": "The meeting starts now.", "source_language": "en"}))
        await ws.send(json.dumps({"type": "stop"}))
        messages = []
        while not messages or messages[-1]["type"] != "end":
            messages.append(await recv_json(ws))
    assert sorted(m["target"] for m in messages if m["type"] == "translation") == ["en", "pt"]


async def test_internal_fault_is_isolated(engines, base_settings, dev_long):
    """A model call that raises an unexpected error ends that session with 1011; the server goes on."""
    from dataclasses import replace

    from tests.conftest import free_port, run_server

    class BrokenAsr:
        name, multilingual = engines.asr.name, engines.asr.multilingual

        def supports_language(self, code):
            return engines.asr.supports_language(code)

        def describe(self):
            return "broken"

        def decode_batch(self, requests):
            raise RuntimeError("simulated model crash")

        detect_language_batch = decode_batch

    broken = replace(engines, asr=BrokenAsr())
    async with run_server(replace(base_settings, port=free_port()), broken) as srv:
        speech = to_s16(dev_long[0][: 16000 * 6])
        run = await stream_pcm(srv.ws_url, speech, StreamOptions(source_language="en", realtime=False), srv.ssl)
        assert run.errors()[-1]["code"] == "internal" and run.close_code == 1011
        async with await open_ws(srv) as ws:
            await ws.send(json.dumps({**START, "targets": []}))
            assert (await recv_json(ws))["type"] == "ready"
            await ws.send(json.dumps({"type": "text", "text": "Still here.", "source_language": "en"}))
            await ws.send(json.dumps({"type": "stop"}))
            messages = [await recv_json(ws), await recv_json(ws)]
            assert messages[0]["text"] == "Still here." and messages[1]["type"] == "end"
