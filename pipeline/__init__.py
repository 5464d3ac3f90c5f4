"""Speech → text → translation pipeline. No network code: bytes and control in, ordered events out."""

import os

# MKL chooses CPU kernels by memory alignment unless told otherwise, so the same request could decode
# differently from one run to the next (seen: a near-tie flipped at a cut-off word). MKL reads this once,
# at its first call in the process (CTranslate2 and torch each carry their own copy), so it is set before
# anything here can load a model. Strict reproducibility had no measurable cost (base, 2 cores); a user's
# setting wins.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

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
