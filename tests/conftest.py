"""Shared fixtures: real recordings, real models (loaded once per run) and a real TLS server."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from pipeline import EngineConfig, Engines

ROOT = Path(__file__).resolve().parent.parent
SPEECH = Path(os.environ.get("SPEECH_DATA", ROOT.parent / "shared" / "data" / "speech"))
# Streaming finals may trail offline ``transcribe`` of en-dev-long (base, 432 words: a word is 0.23 points)
# by this much WER. It catches real regressions (a lost, repeated or looping final costs 5-30 words) and
# absorbs near-tie word flips ("this once" / "these ones", "lasts" / "last"), whose number differs by kind
# of CPU: streaming 8 errors on an Intel AVX-512 VM, 9 on an AMD EPYC, 10 on one CI machine, offline 3-4.
# The 10 % relative target is not met: offline decoding that commits where the stream commits
# (`python -m bench accuracy --causal`) makes 6 errors there, so the target needs look-ahead
# (docs/decisions.md, "What look-ahead is worth").
STREAMING_WER_SLACK = 0.025


@dataclass(frozen=True)
class Clip:
    id: str
    lang: str
    path: Path
    text: str
    english: str


def manifest() -> list[Clip]:
    with (SPEECH / "manifest.tsv").open(newline="", encoding="utf-8") as fh:
        rows = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
        return [Clip(r["id"], r["lang"], SPEECH / r["path"], r["text"], r["english"]) for r in rows]


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    if not (SPEECH / "manifest.tsv").exists():
        pytest.fail(f"real recordings not found at {SPEECH} (set SPEECH_DATA)")
    return SPEECH


@pytest.fixture(scope="session")
def dev_long(speech_dir: Path) -> tuple[np.ndarray, dict]:
    """en-dev-long as 16 kHz float32 and its utterance list."""
    from bench.offline import load_audio

    return load_audio(speech_dir / "en-dev-long.flac"), json.loads((speech_dir / "en-dev-long.json").read_text())


def to_s16(audio: np.ndarray) -> bytes:
    from bench.offline import to_pcm16

    return to_pcm16(audio)


@pytest.fixture(scope="session")
def engines() -> Engines:
    """Whisper base (multilingual) + bergamot, shared by every test that needs real models."""
    loaded = Engines.load(EngineConfig(asr_model="base"))
    yield loaded
    loaded.close()


@dataclass
class RunningServer:
    url: str  # https://127.0.0.1:PORT
    ws_url: str  # wss://127.0.0.1:PORT/v1/stream
    ssl: ssl.SSLContext
    cafile: Path
    app: object

    @property
    def state(self):
        return self.app.state.gateway


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def run_server(settings, engines: Engines | None) -> AsyncIterator[RunningServer]:
    """A real uvicorn server over real TLS in this event loop, on a free port."""
    import uvicorn

    from gateway.server import uvicorn_config

    config = uvicorn_config(settings, engines)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    cafile = settings.cert or settings.certs_dir / "localhost.pem"
    ctx = ssl.create_default_context(cafile=str(cafile))
    try:
        yield RunningServer(f"https://127.0.0.1:{settings.port}", f"wss://127.0.0.1:{settings.port}/v1/stream",
                            ctx, Path(cafile), config.app)
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="session")
def certs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("certs")


@pytest.fixture(scope="session")
def base_settings(certs_dir: Path):
    from gateway.settings import Settings

    # No latency-based admission on the servers tests share: one test's session may still be closing (its
    # latencies counted) while the next test connects. tests/gateway/test_hardening.py tests the gate.
    return Settings(host="127.0.0.1", port=0, certs_dir=certs_dir, log_level="warning", max_sessions=6,
                    admission_latency_s=0)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def server(engines: Engines, base_settings) -> AsyncIterator[RunningServer]:
    """The gateway with the shared real models, over TLS with a self-signed certificate."""
    async with run_server(replace(base_settings, port=free_port()), engines) as running:
        yield running
