"""Hugging Face MarianMT / NLLB / M2M100 translation through transformers and torch (``[hf]`` extra)."""

from __future__ import annotations

import threading

from ..errors import ModelNotFoundError
from .languages import marian_pair_from_name, model_family, model_language_token, supports_pair


class TransformersTranslator:
    """A seq2seq translation model from a local folder or hub id, batched ``generate`` on CPU or GPU.

    Marian models translate one pair (from ``pair`` or the model name); NLLB and M2M100 translate between
    any of their languages. The tokenizer's source language is a per-request value: it is set under a lock.
    """

    name = "transformers"

    def __init__(self, model: str, device: str = "cpu", pair: tuple[str, str] | None = None,
                 max_new_tokens: int = 256, num_beams: int = 2) -> None:
        try:
            import torch
            from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
        except ImportError as exc:
            raise ModelNotFoundError("the transformers backend needs: pip install 'speech-gateway[hf]'") from exc
        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(model)
        self._vocabulary = self._tokenizer.get_vocab()
        self._model = AutoModelForSeq2SeqLM.from_pretrained(model).to(device).eval()
        self.device = device
        self.family = model_family(self._model.config.model_type, type(self._tokenizer).__name__)
        self.pair = pair or (marian_pair_from_name(model) if self.family == "marian" else None)
        if self.family == "marian" and self.pair is None:
            raise ModelNotFoundError(f"cannot tell the language pair of Marian model {model!r}; pass pair=(src, tgt)")
        self._max_new_tokens = max_new_tokens
        self._num_beams = num_beams
        self._lock = threading.Lock()

    def supports(self, source: str, target: str) -> bool:
        return supports_pair(self.family, self.pair, self._vocabulary, source, target)

    def translate(self, texts: list[str], source: str, target: str) -> list[str]:
        if not texts:
            return []
        with self._lock, self._torch.inference_mode():
            kwargs = {}
            if self.family != "marian":
                self._tokenizer.src_lang = model_language_token(self.family, source)
                kwargs["forced_bos_token_id"] = self._tokenizer.convert_tokens_to_ids(
                    model_language_token(self.family, target)
                )
            batch = self._tokenizer(texts, return_tensors="pt", padding=True, truncation=True).to(self.device)
            output = self._model.generate(
                **batch, max_new_tokens=self._max_new_tokens, num_beams=self._num_beams, **kwargs
            )
        return [t.strip() for t in self._tokenizer.batch_decode(output, skip_special_tokens=True)]
