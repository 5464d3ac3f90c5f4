"""Text translation backends and routing (direct, pivot through English, Whisper speech → English)."""

from .base import BACKENDS, TextTranslator, load_translator
from .router import Route, RouteKind, TranslationRouter

__all__ = ["BACKENDS", "Route", "RouteKind", "TextTranslator", "TranslationRouter", "load_translator"]
