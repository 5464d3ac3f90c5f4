"""The reference client's command line (`python -m gateway.client`) against the real server."""

from __future__ import annotations

import asyncio

import pytest

from bench.wer import wer
from gateway.client import CONTAINERS, StreamOptions, stream_pcm
from gateway.client import main as client_main
from tests.conftest import free_port, to_s16


async def run_client(*args: str) -> int:
    """``main`` runs its own event loop: run it in a thread beside the server's."""
    return await asyncio.to_thread(client_main, list(args))


@pytest.mark.parametrize("encoding", ["pcm_s16le", "ogg_opus"])
async def test_the_client_streams_a_file_and_prints_its_finals_and_translations(server, speech_dir, capsys,
                                                                                encoding):
    clip = speech_dir / "en" / "ps-librivox-0890.flac"
    status = await run_client(str(clip), "--url", server.ws_url, "--cafile", str(server.cafile),
                              "--targets", "pt", "--source-language", "en", "--fast", "--encoding", encoding)
    out = capsys.readouterr().out
    finals = [line.split(") ", 1)[1] for line in out.splitlines() if " FINAL " in line]
    assert status == 0, out
    assert wer("unless to be rather cold hearted and rather selfish is to be ill disposed", " ".join(finals)) < 0.2
    assert out.count("-> pt: ") == len(finals) and '"type": "end"' in out


async def test_the_client_says_what_went_wrong_and_exits_non_zero(server, speech_dir, tmp_path, capsys):
    clip = str(speech_dir / "en" / "ps-librivox-0890.flac")
    (tmp_path / "noise.wav").write_bytes(b"not audio at all")
    statuses = [
        await run_client(str(tmp_path / "missing.flac"), "--url", server.ws_url),
        await run_client(str(tmp_path / "noise.wav"), "--url", server.ws_url),
        await run_client(clip, "--url", server.ws_url),  # the generated certificate, not trusted
        await run_client(clip, "--url", f"wss://127.0.0.1:{free_port()}/v1/stream"),  # nothing listens
        await run_client(clip, "--url", server.ws_url, "--cafile", str(server.cafile), "--source-language", "xx"),
    ]
    err = capsys.readouterr().err.splitlines()
    assert statuses == [2, 2, 1, 1, 1], err
    assert err[0].startswith("error: cannot decode") and "missing.flac" in err[0]
    assert err[1].startswith("error: cannot decode") and "noise.wav" in err[1]
    assert "certificate is not trusted" in err[2] and "--cafile" in err[2]
    assert err[3].startswith("error: cannot connect to wss://127.0.0.1:")
    assert err[4].startswith("ERROR unsupported_language:")


async def test_opus_in_ogg_and_webm_gives_the_words_pcm_gives(server, dev_long):
    """What phones and browsers send: the client encodes the clip as Opus and streams the container's bytes
    as the muxer writes them, which the gateway demuxes and decodes as they come."""
    audio, _ = dev_long
    pcm = to_s16(audio[: 16000 * 20])
    texts = {}
    for encoding in ("pcm_s16le", "ogg_opus", "webm_opus"):
        run = await stream_pcm(server.ws_url, pcm, StreamOptions(source_language="en", realtime=False,
                                                                 encoding=encoding), server.ssl)
        assert run.errors() == [] and run.close_code == 1000, encoding
        assert run.of_type("end")[0]["audio_seconds"] == pytest.approx(20, abs=0.1), encoding
        assert len(run.sent) == 200, encoding  # a frame per 100 ms of audio, not one blob
        texts[encoding] = " ".join(m["text"] for m in run.finals())
    assert len(texts["pcm_s16le"].split()) > 15
    for encoding in CONTAINERS:
        assert wer(texts["pcm_s16le"], texts[encoding]) <= 0.15, texts
