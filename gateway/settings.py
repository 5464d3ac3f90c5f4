"""Gateway settings: one frozen object, from command-line flags and ``SPEECH_GATEWAY_*`` variables.

Each flag has an environment variable of the same name (``--max-sessions`` → ``SPEECH_GATEWAY_MAX_SESSIONS``);
a flag given on the command line wins. Repeatable flags take comma-separated values from the environment.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from pipeline import EngineConfig, SessionConfig

ENV_PREFIX = "SPEECH_GATEWAY_"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The pipeline's settings take its own defaults, so that each default is written once.
_ENGINE = EngineConfig()
_SESSION = SessionConfig()


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 8443
    cert: Path | None = None
    key: Path | None = None
    certs_dir: Path = PROJECT_ROOT / "certs"
    insecure_http: bool = False
    model: str = _ENGINE.asr_model
    asr_engine: str = _ENGINE.asr_engine
    device: str = _ENGINE.device
    compute_type: str = _ENGINE.compute_type
    cpu_threads: int = _ENGINE.cpu_threads
    decoder_threads: int = _ENGINE.decoder_threads
    asr_lanes: int = _ENGINE.asr_lanes
    max_batch: int = _ENGINE.max_batch
    batch_wait_ms: float = _ENGINE.batch_wait_ms
    translators: tuple[str, ...] = _ENGINE.translators
    max_sessions: int = 0  # 0: from measured capacity (gateway/capacity.py)
    admission_latency_s: float = 2.0
    max_frame_bytes: int = 1 << 20
    allow_origins: tuple[str, ...] = ()
    tokens: tuple[str, ...] = field(default=(), repr=False)
    log_level: str = "info"
    static_dir: Path = PROJECT_ROOT / "static"
    final_beam_size: int = _SESSION.final_beam_size
    min_silence_ms: int = round(_SESSION.streaming.min_silence_s * 1000)
    context_s: float = _SESSION.streaming.context_s
    eager_final_max_s: float = _SESSION.eager_final_max_s
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

    def client_limits(self) -> dict[str, float]:
        """The limits a client must keep to, as ``ready`` announces them (docs/protocol.md, "Limits")."""
        return {"max_frame_bytes": self.max_frame_bytes, "max_audio_rate": self.max_audio_rate,
                "audio_burst_s": self.audio_burst_s, "idle_timeout_s": self.idle_timeout_s,
                "max_session_s": self.max_session_s}

    @property
    def scheme(self) -> str:
        return "http" if self.insecure_http else "https"


_HELP = {  # one flag per field: --field-name, and SPEECH_GATEWAY_FIELD_NAME in the environment
    "host": "address to listen on",
    "port": "port to listen on",
    "cert": "TLS certificate (PEM); default: a self-signed one in --certs-dir",
    "key": "TLS private key (PEM) for --cert",
    "certs_dir": "where a self-signed localhost certificate is generated when --cert is not given",
    "insecure_http": "serve plain HTTP/WS (only behind a TLS-terminating proxy: browsers need HTTPS for the microphone)",
    "model": "Whisper model: packaged 'base' or 'tiny.en', a CTranslate2 folder, or a hub id (needs network)",
    "asr_engine": "Whisper runtime: auto (CPU: hybrid where the CPU has AMX and torch is installed, else "
                  "CTranslate2; GPU: CTranslate2 where it can run, else transformers/torch), ctranslate2, "
                  "transformers, hybrid (CTranslate2 decoding behind a torch encoder, bfloat16 where the CPU has AMX, "
                  "else float32; CPU only)",
    "device": "auto (first usable CUDA GPU, else CPU), cpu, cuda or cuda:N",
    "compute_type": "auto (CTranslate2, hybrid: int8 on CPU; transformers: float32 on CPU; float16 on GPU), int8, float16, "
                    "bfloat16, int8_float16, float32",
    "max_batch": "requests from different sessions run as one model call, at most this many (0: 4 on CPU, 16 on GPU)",
    "batch_wait_ms": "how long a batch waits for more requests (negative: 0 on CPU, 5 on GPU)",
    "cpu_threads": "threads for Whisper on CPU (0: all cores)",
    "decoder_threads": "threads for Whisper's decoder on CPU, CTranslate2 and hybrid engines (0: one where the "
                       "process has at most 2 CPUs, measured faster there, and with the ctranslate2 engine on "
                       "non-Intel CPUs all of them for a final that runs alone while one session is open; "
                       "else --cpu-threads)",
    "asr_lanes": "Whisper requests run side by side, CTranslate2 and hybrid engines (0: two on a CPU whose "
                 "decoder runs on one thread with another CPU to spare, else one)",
    "max_sessions": "concurrent streaming sessions; more are refused with close code 1013 "
                    "(0: derived from the measured capacity of the model on this device)",
    "admission_latency_s": "while running sessions get their finals later than this after the end of speech "
                           "(p90 over the last 30 s), new sessions are refused with close code 1013 (0: off)",
    "max_frame_bytes": "largest WebSocket message accepted; larger ones close the connection with 1009",
    "log_level": "debug, info, warning or error",
    "static_dir": "the web page's files",
    "final_beam_size": "beam size of final decodes (partials are greedy)",
    "min_silence_ms": "silence that ends an utterance",
    "context_s": "seconds of earlier speech decoded in front of each final, its text forced, so that Whisper "
                 "hears what came before (0: off; finals come sooner on a slow CPU, with 1.5-2 times the "
                 "errors: docs/decisions.md)",
    "eager_final_max_s": "decode an utterance's end before the silence confirms it (finals 0.3 s sooner) while "
                         "final decodes take at most this long; slower, wait for the confirmation, so that "
                         "no decode is wasted when speech resumes (0: always wait)",
    "max_connections_per_client": "open WebSockets per client address",
    "idle_timeout_s": "a session that receives nothing for this long is finished (finals, then end)",
    "max_session_s": "seconds of audio after which a session is finished",
    "max_audio_rate": "PCM audio may arrive at most this many times faster than real time (after the burst)",
    "audio_burst_s": "seconds of PCM audio a client may send ahead of real time at once",
    "max_pending_messages": "results waiting for a slow client before it is disconnected "
                            "(stale partials are dropped first)",
    "max_send_delay_s": "longest a result may wait for a slow client before it is disconnected",
    "shutdown_grace_s": "on SIGTERM, time for sessions to send their finals before they are closed with 1001",
}
_REPEATABLE = {  # field → (flag, help)
    "translators": ("--translator", "text translation backend, repeatable"),
    "allow_origins": ("--allow-origin", "extra Origin allowed to open WebSockets "
                      "(repeatable; the page's own origin is always allowed)"),
    "tokens": ("--token", "API token clients must present (Authorization: Bearer or ?token=); repeatable; "
               "none: no auth"),
}


def _env(name: str) -> str | None:
    return os.environ.get(ENV_PREFIX + name.upper())


def build_parser() -> argparse.ArgumentParser:
    defaults = Settings()
    p = argparse.ArgumentParser(
        prog="python -m gateway",
        description="Real-time speech translation gateway (HTTPS page, WSS /v1/stream, POST /v1/translate).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog=f"Every flag can also be set as {ENV_PREFIX}<FLAG> (e.g. {ENV_PREFIX}MAX_SESSIONS=8); "
               "repeatable ones as a comma-separated list.",
    )
    for name, help_text in _HELP.items():
        default, env = getattr(defaults, name), _env(name)
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            p.add_argument(flag, action="store_true", default=env in ("1", "true", "yes"), help=help_text)
            continue
        kind = Path if default is None or isinstance(default, Path) else type(default)
        p.add_argument(flag, type=kind, default=kind(env) if env is not None else default, help=help_text)
    for name, (flag, help_text) in _REPEATABLE.items():
        default = ",".join(_repeatable_env(flag) or getattr(defaults, name)) or "none"
        p.add_argument(flag, dest=name, action="append", default=argparse.SUPPRESS,
                       help=f"{help_text} (default: {default})")
    return p


def _repeatable_env(flag: str) -> list[str]:
    """SPEECH_GATEWAY_TOKEN=a,b for --token (the variable is named after the flag)."""
    return [v.strip() for v in (_env(flag[2:].replace("-", "_")) or "").split(",") if v.strip()]


def load_settings(argv: Sequence[str] | None = None) -> Settings:
    """Parse flags (and environment) into Settings."""
    args = vars(build_parser().parse_args(argv))
    if not 0 <= args["context_s"] <= _SESSION.streaming.max_window_s:
        raise SystemExit(f"--context-s must be between 0 and {_SESSION.streaming.max_window_s:g} "
                         "(context and utterance share Whisper's 30 s window)")
    if (args["cert"] is None) != (args["key"] is None):
        raise SystemExit("--cert and --key go together")
    for name, (flag, _) in _REPEATABLE.items():
        args[name] = tuple(args.get(name) or _repeatable_env(flag) or getattr(Settings, name))
    return Settings(**{f.name: args[f.name] for f in fields(Settings)})
