"""Gateway settings: one frozen object, from command-line flags and ``SPEECH_GATEWAY_*`` variables.

Each flag has an environment variable of the same name (``--max-sessions`` → ``SPEECH_GATEWAY_MAX_SESSIONS``);
a flag given on the command line wins. Repeatable flags take comma-separated values from the environment.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ENV_PREFIX = "SPEECH_GATEWAY_"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 8443
    cert: Path | None = None
    key: Path | None = None
    certs_dir: Path = PROJECT_ROOT / "certs"
    insecure_http: bool = False
    model: str = "base"
    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 0
    translators: tuple[str, ...] = ("bergamot",)
    max_sessions: int = 0  # 0: from measured capacity (gateway/capacity.py)
    max_frame_bytes: int = 1 << 20
    allow_origins: tuple[str, ...] = ()
    tokens: tuple[str, ...] = field(default=(), repr=False)
    log_level: str = "info"
    static_dir: Path = PROJECT_ROOT / "static"
    final_beam_size: int = 5
    min_silence_ms: int = 500
    max_connections_per_client: int = 16
    idle_timeout_s: float = 60.0
    max_session_s: float = 4 * 3600.0
    max_audio_rate: float = 2.0
    audio_burst_s: float = 30.0
    max_pending_messages: int = 2000
    max_send_delay_s: float = 60.0
    shutdown_grace_s: float = 30.0

    @property
    def session_limit(self) -> int:
        """--max-sessions, or the measured capacity of the model on this device when it is 0."""
        from .capacity import default_max_sessions

        return self.max_sessions or default_max_sessions(self.model, self.device)

    @property
    def scheme(self) -> str:
        return "http" if self.insecure_http else "https"


def _env(name: str) -> str | None:
    return os.environ.get(ENV_PREFIX + name.upper().replace("-", "_"))


def _list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    d = Settings()
    p = argparse.ArgumentParser(
        prog="python -m gateway",
        description="Real-time speech translation gateway (HTTPS page, WSS /v1/stream, POST /v1/translate).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog=f"Every flag can also be set as {ENV_PREFIX}<FLAG> (e.g. {ENV_PREFIX}MAX_SESSIONS=8).",
    )
    add = p.add_argument
    add("--host", default=_env("host") or d.host, help="address to listen on")
    add("--port", type=int, default=int(_env("port") or d.port), help="port to listen on")
    add("--cert", type=Path, default=_env("cert"), help="TLS certificate (PEM); default: self-signed in --certs-dir")
    add("--key", type=Path, default=_env("key"), help="TLS private key (PEM) for --cert")
    add("--certs-dir", type=Path, default=Path(_env("certs_dir") or d.certs_dir),
        help="where a self-signed localhost certificate is generated when --cert is not given")
    add("--insecure-http", action="store_true", default=_env("insecure_http") in ("1", "true"),
        help="serve plain HTTP/WS (only behind a TLS-terminating proxy: browsers need HTTPS for the microphone)")
    add("--model", default=_env("model") or d.model,
        help="Whisper model: packaged 'base' or 'tiny.en', a CTranslate2 folder, or a hub id (needs network)")
    add("--device", default=_env("device") or d.device, help="cpu, cuda or cuda:N")
    add("--compute-type", default=_env("compute_type") or d.compute_type,
        help="CTranslate2 compute type: int8 (CPU), float16 (GPU), int8_float16, float32")
    add("--cpu-threads", type=int, default=int(_env("cpu_threads") or d.cpu_threads),
        help="threads for Whisper on CPU (0: all cores)")
    add("--translator", dest="translators", action="append", default=None,
        help=f"text translation backend, repeatable (default: {','.join(d.translators)})")
    add("--max-sessions", type=int, default=int(_env("max_sessions") or d.max_sessions),
        help="concurrent streaming sessions; more are refused with close code 1013 "
             "(0: derived from the measured capacity of the model on this device)")
    add("--max-frame-bytes", type=int, default=int(_env("max_frame_bytes") or d.max_frame_bytes),
        help="largest WebSocket message accepted; larger ones close the connection with 1009")
    add("--allow-origin", dest="allow_origins", action="append", default=None,
        help="extra Origin allowed to open WebSockets (repeatable; the page's own origin is always allowed)")
    add("--token", dest="tokens", action="append", default=None,
        help="API token clients must present (Authorization: Bearer or ?token=); repeatable; none: no auth")
    add("--log-level", default=_env("log_level") or d.log_level, choices=["debug", "info", "warning", "error"])
    add("--static-dir", type=Path, default=Path(_env("static_dir") or d.static_dir), help="the web page's files")
    add("--final-beam-size", type=int, default=int(_env("final_beam_size") or d.final_beam_size),
        help="beam size of final decodes (partials are greedy)")
    add("--min-silence-ms", type=int, default=int(_env("min_silence_ms") or d.min_silence_ms),
        help="silence that ends an utterance")
    add("--max-connections-per-client", type=int,
        default=int(_env("max_connections_per_client") or d.max_connections_per_client),
        help="open WebSockets per client address")
    add("--idle-timeout-s", type=float, default=float(_env("idle_timeout_s") or d.idle_timeout_s),
        help="a session that receives nothing for this long is finished (finals, then end)")
    add("--max-session-s", type=float, default=float(_env("max_session_s") or d.max_session_s),
        help="seconds of audio after which a session is finished")
    add("--max-audio-rate", type=float, default=float(_env("max_audio_rate") or d.max_audio_rate),
        help="PCM audio may arrive at most this many times faster than real time (after the burst)")
    add("--audio-burst-s", type=float, default=float(_env("audio_burst_s") or d.audio_burst_s),
        help="seconds of PCM audio a client may send ahead of real time at once")
    add("--max-pending-messages", type=int, default=int(_env("max_pending_messages") or d.max_pending_messages),
        help="results waiting for a slow client before it is disconnected (stale partials are dropped first)")
    add("--max-send-delay-s", type=float, default=float(_env("max_send_delay_s") or d.max_send_delay_s),
        help="longest a result may wait for a slow client before it is disconnected")
    add("--shutdown-grace-s", type=float, default=float(_env("shutdown_grace_s") or d.shutdown_grace_s),
        help="on SIGTERM, time for sessions to send their finals before they are closed with 1001")
    return p


def load_settings(argv: Sequence[str] | None = None) -> Settings:
    """Parse flags (and environment) into Settings."""
    args = build_parser().parse_args(argv)
    if (args.cert is None) != (args.key is None):
        raise SystemExit("--cert and --key go together")
    return Settings(
        host=args.host, port=args.port, cert=args.cert, key=args.key, certs_dir=args.certs_dir,
        insecure_http=args.insecure_http, model=args.model, device=args.device, compute_type=args.compute_type,
        cpu_threads=args.cpu_threads,
        translators=tuple(args.translators or _list(_env("translator")) or Settings.translators),
        max_sessions=args.max_sessions, max_frame_bytes=args.max_frame_bytes,
        allow_origins=tuple(args.allow_origins or _list(_env("allow_origin"))),
        tokens=tuple(args.tokens or _list(_env("token"))),
        log_level=args.log_level, static_dir=args.static_dir, final_beam_size=args.final_beam_size, min_silence_ms=args.min_silence_ms,
        max_connections_per_client=args.max_connections_per_client, idle_timeout_s=args.idle_timeout_s,
        max_session_s=args.max_session_s, max_audio_rate=args.max_audio_rate, audio_burst_s=args.audio_burst_s,
        max_pending_messages=args.max_pending_messages, max_send_delay_s=args.max_send_delay_s,
        shutdown_grace_s=args.shutdown_grace_s,
    )
