"""Speech → text → translation pipeline. No network code: bytes and control in, ordered events out."""

from .asr import AsrEngine, DecodeOptions, DecodeResult, WhisperEngine
from .audio import ENCODINGS, AudioFormat, make_decoder
from .engines import EngineConfig, Engines
from .errors import (
    AudioFormatError,
    BadAudioError,
    ModelNotFoundError,
    OverloadedError,
    PipelineError,
    TranslationUnavailableError,
    UnsupportedLanguageError,
)
from .events import EndEvent, Event, TranscriptEvent, TranslationErrorEvent, TranslationEvent
from .models import PACKAGED_MODELS, resolve_whisper_model
from .segmenter import StreamingConfig
from .session import AUTO, Session, SessionConfig

__all__ = [
    "AUTO", "ENCODINGS", "AsrEngine", "AudioFormat", "AudioFormatError", "BadAudioError", "DecodeOptions",
    "DecodeResult", "EndEvent", "EngineConfig", "Engines", "Event", "WhisperEngine", "ModelNotFoundError",
    "OverloadedError", "PACKAGED_MODELS", "PipelineError", "Session", "SessionConfig", "StreamingConfig",
    "TranscriptEvent", "TranslationErrorEvent", "TranslationEvent", "TranslationUnavailableError",
    "UnsupportedLanguageError", "make_decoder", "resolve_whisper_model",
]
