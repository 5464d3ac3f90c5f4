"""Typed errors raised by the pipeline. Each one concerns a single session unless stated otherwise."""

from __future__ import annotations


class PipelineError(Exception):
    """Base class: something went wrong in one session's pipeline."""

    code = "internal"


class AudioFormatError(PipelineError):
    """The declared audio format is not supported (encoding, sample rate or channel count)."""

    code = "unsupported_audio"


class BadAudioError(PipelineError):
    """The audio bytes do not decode to valid audio in the declared format."""

    code = "bad_audio"


class UnsupportedLanguageError(PipelineError):
    """A language code is not known to the loaded models."""

    code = "unsupported_language"


class ModelNotFoundError(PipelineError):
    """A model name or path cannot be resolved; the message says what to install."""

    code = "model_not_found"


class TranslationUnavailableError(PipelineError):
    """No translation route exists between two languages with the loaded backends."""

    code = "translation_unavailable"


class OverloadedError(PipelineError):
    """A bounded queue in front of a shared model is full."""

    code = "overloaded"
