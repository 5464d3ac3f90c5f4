"""The text translation interface and the registry of backends."""

from __future__ import annotations

import importlib
from typing import Any, Protocol


class TextTranslator(Protocol):
    """A loaded text translation model. ``translate`` is called from a worker thread."""

    name: str

    def supports(self, source: str, target: str) -> bool: ...

    def translate(self, texts: list[str], source: str, target: str) -> list[str]:
        """Translate a batch of texts from ``source`` to ``target`` (ISO 639-1 codes)."""
        ...


# name → "module:Class"; imported only when asked for, so optional extras stay optional.
BACKENDS: dict[str, str] = {
    "bergamot": "pipeline.translation.bergamot:BergamotTranslator",
    "transformers": "pipeline.translation.hf:TransformersTranslator",
    "ctranslate2": "pipeline.translation.ct2:CTranslate2Translator",
}


def load_translator(backend: str, **kwargs: Any) -> TextTranslator:
    """Instantiate a backend by registry name."""
    try:
        target = BACKENDS[backend]
    except KeyError:
        raise ValueError(f"unknown translation backend {backend!r}; known: {', '.join(BACKENDS)}") from None
    module_name, _, cls_name = target.partition(":")
    return getattr(importlib.import_module(module_name), cls_name)(**kwargs)
