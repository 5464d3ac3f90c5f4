"""MarianMT / NLLB / M2M100 converted to CTranslate2 (fast int8 on CPU, float16 on GPU).

Convert once with ``ct2-transformers-converter --model NAME_OR_PATH --output_dir DIR --copy_files
tokenizer_config.json ...`` or ``ctranslate2.converters.TransformersConverter``; the tokenizer is loaded
with transformers from ``tokenizer`` (default: the model folder).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from ..errors import ModelNotFoundError
from .languages import marian_pair_from_name, model_family, model_language_token, supports_pair


class CTranslate2Translator:
    name = "ctranslate2"

    def __init__(self, model: str, tokenizer: str | None = None, device: str = "cpu", compute_type: str = "default",
                 family: str | None = None, pair: tuple[str, str] | None = None, beam_size: int = 2,
                 max_batch_size: int = 32, max_new_tokens: int = 256) -> None:
        try:
            import ctranslate2
            from transformers import AutoTokenizer
        except ImportError as exc:
            raise ModelNotFoundError("the ctranslate2 backend needs: pip install 'speech-gateway[hf]'") from exc
        device_type, _, index = device.partition(":")
        self._translator = ctranslate2.Translator(model, device=device_type, device_index=int(index or 0),
                                                  compute_type=compute_type)
        self._tokenizer = AutoTokenizer.from_pretrained(tokenizer or model)
        self._vocabulary = self._tokenizer.get_vocab()
        config = Path(model) / "config.json"
        model_type = json.loads(config.read_text()).get("model_type", "") if config.exists() else ""
        self.family = family or model_family(model_type, type(self._tokenizer).__name__)
        self.pair = pair or (marian_pair_from_name(tokenizer or model) if self.family == "marian" else None)
        if self.family == "marian" and self.pair is None:
            raise ModelNotFoundError(f"cannot tell the language pair of Marian model {model!r}; pass pair=(src, tgt)")
        self._beam_size = beam_size
        self._max_batch_size = max_batch_size
        self._max_new_tokens = max_new_tokens
        self._lock = threading.Lock()  # guards the tokenizer's per-request source language

    def supports(self, source: str, target: str) -> bool:
        return supports_pair(self.family, self.pair, self._vocabulary, source, target)

    def translate(self, texts: list[str], source: str, target: str) -> list[str]:
        if not texts:
            return []
        target_prefix = None
        with self._lock:
            if self.family != "marian":
                self._tokenizer.src_lang = model_language_token(self.family, source)
                target_prefix = [[model_language_token(self.family, target)]] * len(texts)
            sources = [self._tokenizer.convert_ids_to_tokens(self._tokenizer.encode(t)) for t in texts]
        results = self._translator.translate_batch(
            sources, target_prefix=target_prefix, beam_size=self._beam_size, max_batch_size=self._max_batch_size,
            max_decoding_length=self._max_new_tokens,
        )
        outputs = []
        for result in results:
            tokens = result.hypotheses[0][1:] if target_prefix else result.hypotheses[0]
            ids = self._tokenizer.convert_tokens_to_ids(tokens)
            outputs.append(self._tokenizer.decode(ids, skip_special_tokens=True).strip())
        return outputs

