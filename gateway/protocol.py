"""Protocol v1 of ``/v1/stream``: client message schemas, close codes, error codes, server messages.

See docs/protocol.md. Every server message is a JSON text frame; ``seq`` is added by the connection's
single writer, so numbering follows the order of sending.
"""

from __future__ import annotations

import re
from enum import Enum, IntEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter

from pipeline import (
    ENCODINGS,
    EndEvent,
    Event,
    TranscriptEvent,
    TranslationErrorEvent,
    TranslationEvent,
)

PROTOCOL_VERSION = 1
MAX_TEXT_CHARS = 2000


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED_DATA = 1003
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013


class ErrorCode(str, Enum):
    BAD_MESSAGE = "bad_message"
    UNSUPPORTED_AUDIO = "unsupported_audio"
    UNSUPPORTED_LANGUAGE = "unsupported_language"
    TRANSLATION_UNAVAILABLE = "translation_unavailable"
    BAD_AUDIO = "bad_audio"
    OVERLOADED = "overloaded"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN_ORIGIN = "forbidden_origin"
    TOO_FAST = "too_fast"
    IDLE_TIMEOUT = "idle_timeout"
    SESSION_TOO_LONG = "session_too_long"
    GOING_AWAY = "going_away"
    INTERNAL = "internal"


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class AudioSpec(_Message):
    encoding: Literal["pcm_s16le", "pcm_f32le", "webm_opus", "ogg_opus"] = "pcm_s16le"
    sample_rate: int = Field(16000, ge=1)
    channels: int = Field(1, ge=1)


def primary_language(tag: str) -> str:
    """The language subtag of a BCP-47 or locale tag, lowercased: 'pt-BR', 'pt_BR' and 'PT' → 'pt'.

    Browsers (``navigator.language``) and phones send regional tags; the models here know languages,
    not regional variants, so the region or script is dropped (and what is left is checked later)."""
    return (re.split(r"[-_]", tag, maxsplit=1)[0] or tag).lower()


def _unique(codes: list[str]) -> list[str]:
    return list(dict.fromkeys(codes))  # 'pt-BR' and 'pt-PT' are one target once their regions are dropped


LanguageCode = Annotated[str, Field(min_length=2, max_length=35), AfterValidator(primary_language)]
LanguageList = Annotated[list[LanguageCode], Field(max_length=8), AfterValidator(_unique)]


class StartMessage(_Message):
    type: Literal["start"]
    audio: AudioSpec = AudioSpec()
    source_language: LanguageCode = "auto"
    languages: LanguageList = Field(default_factory=list)  # auto chooses among these
    targets: LanguageList = Field(default_factory=list)
    partials: bool = True


class AudioMessage(_Message):
    type: Literal["audio"]
    data: str = Field(max_length=8 * 1024 * 1024)  # base64


class ConfigMessage(_Message):
    type: Literal["config"]
    targets: LanguageList


class TextMessage(_Message):
    type: Literal["text"]
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    source_language: LanguageCode = "en"


class StopMessage(_Message):
    type: Literal["stop"]


ClientMessage = Annotated[
    StartMessage | AudioMessage | ConfigMessage | TextMessage | StopMessage, Field(discriminator="type")
]
CLIENT_MESSAGE = TypeAdapter(ClientMessage)
ACCEPTED_TYPES = "start, audio, config, text, stop"


def start_from_query(params: dict[str, str]) -> StartMessage | None:
    """A start message from query parameters, or None when the client will send one."""
    audio_keys = {"encoding", "sample_rate", "channels"}
    if not audio_keys & params.keys() and not {"source_language", "languages", "targets"} & params.keys():
        return None
    audio: dict[str, Any] = {}
    if "encoding" in params:
        audio["encoding"] = params["encoding"]
    for key in ("sample_rate", "channels"):
        if key in params:
            audio[key] = int(params[key]) if params[key].isdigit() else params[key]
    targets, languages = ([t for t in params.get(key, "").split(",") if t] for key in ("targets", "languages"))
    body: dict[str, Any] = {"type": "start", "audio": audio, "targets": targets, "languages": languages}
    if "source_language" in params:
        body["source_language"] = params["source_language"]
    if "partials" in params:
        body["partials"] = params["partials"].lower() not in ("0", "false", "no")
    return StartMessage.model_validate(body)


STREAM_HINT = f" (accepted types: {ACCEPTED_TYPES}; encodings: {', '.join(ENCODINGS)})"


def describe_validation_error(exc: Exception, hint: str = "") -> str:
    """One human-readable line from a pydantic ValidationError (or a JSON error)."""
    errors = getattr(exc, "errors", None)
    if errors is None:
        return str(exc)
    parts = []
    for err in errors()[:3]:
        where = ".".join(str(p) for p in err.get("loc", ()) if not str(p).endswith("Message")) or "message"
        parts.append(f"{where}: {err.get('msg')}")
    return "; ".join(parts) + hint


def error_message(code: ErrorCode, message: str, fatal: bool, **extra: Any) -> dict[str, Any]:
    return {"type": "error", "code": code.value, "message": message, "fatal": fatal, **extra}


def event_message(event: Event) -> dict[str, Any]:
    """The protocol message for one pipeline event."""
    if isinstance(event, TranscriptEvent):
        return {
            "type": "transcript", "segment": event.segment, "final": event.final, "text": event.text,
            "stable": event.stable, "start": round(event.start, 3), "end": round(event.end, 3),
            "language": event.language,
        }
    if isinstance(event, TranslationEvent):
        return {"type": "translation", "segment": event.segment, "target": event.target,
                "final": event.final, "text": event.text}
    if isinstance(event, TranslationErrorEvent):
        return {"type": "error", "code": event.code, "message": event.message, "fatal": False,
                "segment": event.segment, "target": event.target}
    if isinstance(event, EndEvent):
        return {"type": "end", "segments": event.segments, "audio_seconds": event.audio_seconds}
    raise TypeError(f"unknown event {event!r}")
