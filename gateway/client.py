"""Reference client for protocol v1: ``python -m gateway.client FILE --targets pt``.

Decodes any audio file with PyAV to 16 kHz mono ``pcm_s16le`` and streams it in frames of 100 ms of audio:
as that PCM, or encoded as Opus in Ogg or WebM (``--encoding``), each frame what the muxer had written by
then; in real time, or with ``--fast`` as fast as the server takes it within the limits its ``ready``
announces. Prints partial and final lines, and exits non-zero if the server reports an error.
``stream_pcm`` is the library form used by the tests and the benchmark: it records the send time of
every frame and the arrival time of every message.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

SAMPLE_RATE = 16_000
BYTES_PER_SECOND = SAMPLE_RATE * 2
Frame = TypeVar("Frame")


def decode_file(path: str | Path) -> bytes:
    """Any audio file → 16 kHz mono s16le bytes."""
    import av

    chunks: list[bytes] = []
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            frame.pts = None
            chunks.extend(bytes(f.planes[0])[: f.samples * 2] for f in resampler.resample(frame))
        chunks.extend(bytes(f.planes[0])[: f.samples * 2] for f in resampler.resample(None))
    return b"".join(chunks)


@dataclass(frozen=True)
class StreamOptions:
    targets: tuple[str, ...] = ()
    source_language: str = "auto"
    partials: bool = True
    realtime: bool = True
    chunk_ms: int = 100
    token: str | None = None
    encoding: str = "pcm_s16le"
    sample_rate: int = SAMPLE_RATE
    send_stop: bool = True


@dataclass
class Received:
    at: float  # time.monotonic()
    message: dict[str, Any]


@dataclass
class StreamRun:
    """Everything one streamed file produced, with timings."""

    sent: list[float] = field(default_factory=list)  # monotonic send time of each frame
    chunk_seconds: float = 0.1
    received: list[Received] = field(default_factory=list)
    close_code: int | None = None

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [r.message for r in self.received if r.message.get("type") == kind]

    def finals(self) -> list[dict[str, Any]]:
        return [m for m in self.of_type("transcript") if m["final"]]

    def errors(self) -> list[dict[str, Any]]:
        return self.of_type("error")


CONTAINERS = {"ogg_opus": "ogg", "webm_opus": "webm"}  # protocol encoding → PyAV container format


def opus_frames(pcm: bytes, container: str, sample_rate: int = SAMPLE_RATE, frame_seconds: float = 0.1,
                ) -> list[bytes]:
    """Mono ``pcm_s16le`` → Opus in an ``ogg`` or ``webm`` container, as browsers' MediaRecorder and mobile
    apps send it: the container's bytes cut into one frame per ``frame_seconds`` of audio, each holding what
    the muxer had written once that audio was encoded (empty while it holds a page back)."""
    import av
    import numpy as np

    buffer = io.BytesIO()
    written: list[tuple[float, int]] = []  # (audio seconds encoded, bytes written by then)
    encoded_s = 0.0
    # Pages (Ogg) and clusters (WebM) of one frame's audio, as a recorder asked for chunks that often makes
    # them; FFmpeg's defaults (1 s pages, 5 s clusters) would hold the audio back by that much.
    muxer = ({"page_duration": str(round(frame_seconds * 1e6))} if container == "ogg"
             else {"cluster_time_limit": str(round(frame_seconds * 1e3)), "live": "1"})
    with av.open(buffer, "w", format=container, options=muxer, buffer_size=1024) as out:
        stream = out.add_stream("libopus", rate=48000, layout="mono")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.frombuffer(pcm, "<i2")[None, :], format="s16", layout="mono")
        frame.rate = sample_rate
        for resampled in [*resampler.resample(frame), *resampler.resample(None), None]:
            for packet in stream.encode(resampled):
                encoded_s += float(packet.duration * packet.time_base)
                out.mux(packet)
                written.append((encoded_s, buffer.tell()))
    data = buffer.getvalue()
    count = max(1, math.ceil(len(pcm) / 2 / sample_rate / frame_seconds))
    frames, start, done = [], 0, 0
    for k in range(count):
        while done < len(written) and written[done][0] <= (k + 1) * frame_seconds:
            done += 1
        end = len(data) if k == count - 1 else max(start, written[done - 1][1] if done else 0)
        frames.append(data[start:end])
        start = end
    return frames


def client_ssl_context(cafile: str | None = None, insecure: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cafile)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def frames_of(data: Frame, size: int) -> Iterator[Frame]:
    """``data`` (bytes or a 1-D array) in consecutive frames of ``size`` items, the last one maybe shorter."""
    return (data[offset : offset + size] for offset in range(0, len(data), size))


@dataclass(frozen=True)
class AudioLimits:
    """How far ahead of real time the server takes PCM (``ready``'s ``limits``): a bucket of ``burst_s``
    seconds of audio, refilled at ``rate`` × real time; audio beyond it is dropped with ``too_fast``."""

    rate: float
    burst_s: float
    # Keeping to half the burst and 90 % of the rate leaves the server room to read late: a backlog that
    # waited in TCP while its session was busy arrives at once, and still fits the bucket after a stall
    # of up to burst_share × burst_s / (rate_share × rate) (8.3 s at the defaults, 2x and 30 s).
    burst_share: float = 0.5
    rate_share: float = 0.9

    @classmethod
    def from_ready(cls, ready: dict[str, Any]) -> AudioLimits | None:
        """The limits ``ready`` announces; None from a server that announces none."""
        limits = ready.get("limits") or {}
        rate, burst_s = limits.get("max_audio_rate"), limits.get("audio_burst_s")
        if not isinstance(rate, int | float) or not isinstance(burst_s, int | float) or rate <= 0:
            return None
        return cls(float(rate), float(burst_s))

    def earliest_send(self, audio_seconds: float) -> float:
        """Seconds after the first frame when ``audio_seconds`` of audio in all may have been sent."""
        return max(0.0, (audio_seconds - self.burst_share * self.burst_s) / (self.rate_share * self.rate))


async def send_paced(frames: Iterable[Frame], send: Callable[[Frame], Awaitable[object]], sent: list[float],
                     realtime: bool = True, frame_seconds: float = 0.1, limits: AudioLimits | None = None,
                     ) -> None:
    """``send`` each frame, frame i no sooner than ``i * frame_seconds`` after the first, as a live source
    would; when not ``realtime``, as fast as ``send`` takes them within ``limits`` (if given). The clock
    never waits for a slow receiver. Appends each frame's hand-over time to ``sent``, the times the
    benches count latencies from."""
    started = time.monotonic()
    for i, frame in enumerate(frames):
        if realtime:
            due = i * frame_seconds
        elif limits is not None:
            due = limits.earliest_send((i + 1) * frame_seconds)
        else:
            due = 0.0
        if due > 0:
            await asyncio.sleep(max(0.0, started + due - time.monotonic()))
        if len(frame):  # a recorder hands out nothing while its muxer holds a page back
            await send(frame)
        sent.append(time.monotonic())


async def stream_pcm(
    url: str, audio: bytes, options: StreamOptions = StreamOptions(), ssl_context: ssl.SSLContext | None = None,
    on_message: Callable[[Received], None] | None = None,
) -> StreamRun:
    """Stream ``audio``, mono ``pcm_s16le`` at ``options.sample_rate``, to ``url`` in ``options.encoding``
    (encoded here for Opus containers) and collect every server message."""
    run = StreamRun(chunk_seconds=options.chunk_ms / 1000)
    headers = {"Authorization": f"Bearer {options.token}"} if options.token else None
    if options.encoding in CONTAINERS:
        frames = opus_frames(audio, CONTAINERS[options.encoding], options.sample_rate, run.chunk_seconds)
    else:
        frames = list(frames_of(audio, int(options.sample_rate * 2 * run.chunk_seconds)))
    # Sent faster than real time, audio waits in TCP while the server is busy, and a keepalive ping waits
    # behind it: its 20 s timeout then closed healthy connections (four unpaced sessions on a slow CPU).
    # The server's own pings still watch the connection.
    async with connect(url, ssl=ssl_context if url.startswith("wss") else None, max_size=None,
                       additional_headers=headers, open_timeout=30,
                       ping_interval=20 if options.realtime else None) as ws:
        await ws.send(json.dumps({
            "type": "start", "source_language": options.source_language, "targets": list(options.targets),
            "partials": options.partials,
            "audio": {"encoding": options.encoding, "sample_rate": options.sample_rate, "channels": 1},
        }))

        ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        async def send_audio() -> None:
            # Sent ahead of real time, PCM keeps to the limits that `ready` announces, or the excess is lost.
            limits = None
            if not options.realtime and options.encoding == "pcm_s16le":
                limits = AudioLimits.from_ready(await ready)
            await send_paced(frames, ws.send, run.sent, options.realtime, run.chunk_seconds, limits)
            if options.send_stop:
                await ws.send(json.dumps({"type": "stop"}))

        sender = asyncio.create_task(send_audio())
        try:
            async for raw in ws:
                item = Received(time.monotonic(), json.loads(raw))
                run.received.append(item)
                if item.message.get("type") == "ready" and not ready.done():
                    ready.set_result(item.message)
                if on_message is not None:
                    on_message(item)
        except ConnectionClosed:
            pass  # an abnormal close: its code is recorded below
        finally:
            if not sender.done():
                sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        run.close_code = ws.close_code
    return run


def _print(item: Received) -> None:
    m = item.message
    kind = m.get("type")
    if kind == "transcript":
        mark = "FINAL" if m["final"] else "....."
        print(f"[{m['start']:7.2f}-{m['end']:7.2f}] {mark} #{m['segment']} ({m['language']}) {m['text']}", flush=True)
    elif kind == "translation":
        print(f"{'':17} -> {m['target']}: {m['text']}", flush=True)
    elif kind == "error":
        print(f"ERROR {m['code']}: {m['message']}", file=sys.stderr, flush=True)
    else:
        print(json.dumps(m), flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gateway.client", description=__doc__.split("\n")[0])
    p.add_argument("file", help="any audio file PyAV can read")
    p.add_argument("--url", default="wss://localhost:8443/v1/stream")
    p.add_argument("--targets", default="", help="comma-separated target languages, e.g. pt,en")
    p.add_argument("--source-language", default="auto")
    p.add_argument("--fast", action="store_true",
                   help="send ahead of real time, as fast as the limits the server announces allow")
    p.add_argument("--encoding", default="pcm_s16le", choices=["pcm_s16le", *CONTAINERS],
                   help="what to send: 16 kHz PCM, or the audio encoded as Opus in Ogg or WebM (as phones "
                        "and browsers send it)")
    p.add_argument("--no-partials", action="store_true")
    p.add_argument("--cafile", help="CA/certificate to trust (e.g. certs/localhost.pem)")
    p.add_argument("--insecure", action="store_true", help="do not verify the server certificate")
    p.add_argument("--token")
    p.add_argument("--json", action="store_true", help="print raw protocol messages")
    args = p.parse_args(argv)
    options = StreamOptions(
        targets=tuple(t for t in args.targets.split(",") if t), source_language=args.source_language,
        partials=not args.no_partials, realtime=not args.fast, token=args.token, encoding=args.encoding,
    )
    printer = (lambda item: print(json.dumps(item.message), flush=True)) if args.json else _print
    import av

    try:
        audio = decode_file(args.file)
    except (OSError, av.error.FFmpegError) as exc:
        return _failed(f"cannot decode {args.file}: {exc}", 2)
    try:
        ssl_context = client_ssl_context(args.cafile, args.insecure)
    except OSError as exc:
        return _failed(f"cannot read --cafile {args.cafile}: {exc}", 2)
    try:
        run = asyncio.run(stream_pcm(args.url, audio, options, ssl_context, printer))
    except ssl.SSLCertVerificationError as exc:
        return _failed(f"{args.url}: the server's certificate is not trusted ({exc.verify_message}): pass "
                       "--cafile with it (certs/localhost.pem for the gateway's generated one) or --insecure", 1)
    except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
        return _failed(f"cannot connect to {args.url}: {exc}", 1)
    return 1 if run.errors() or run.close_code != 1000 else 0


def _failed(message: str, status: int) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
