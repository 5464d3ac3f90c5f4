"""Language codes of multilingual MT models: ISO 639-1 → the model's own token."""

from __future__ import annotations

import re

from ..errors import ModelNotFoundError

_LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}$")


def is_language_code(code: str) -> bool:
    """Whether ``code`` has the shape of an ISO 639 code (two letters, or three for the languages that
    have no two-letter code, such as Whisper's 'haw' and 'yue')."""
    return _LANGUAGE_CODE.match(code) is not None

# NLLB-200 uses FLORES-200 codes; the common languages are listed, others can be passed as-is.
NLLB_CODES = {
    "ar": "arb_Arab", "bg": "bul_Cyrl", "ca": "cat_Latn", "cs": "ces_Latn", "da": "dan_Latn", "de": "deu_Latn",
    "el": "ell_Grek", "en": "eng_Latn", "es": "spa_Latn", "et": "est_Latn", "fa": "pes_Arab", "fi": "fin_Latn",
    "fr": "fra_Latn", "he": "heb_Hebr", "hi": "hin_Deva", "hr": "hrv_Latn", "hu": "hun_Latn", "id": "ind_Latn",
    "it": "ita_Latn", "ja": "jpn_Jpan", "ko": "kor_Hang", "lt": "lit_Latn", "lv": "lvs_Latn", "nl": "nld_Latn",
    "no": "nob_Latn", "pl": "pol_Latn", "pt": "por_Latn", "ro": "ron_Latn", "ru": "rus_Cyrl", "sk": "slk_Latn",
    "sl": "slv_Latn", "sr": "srp_Cyrl", "sv": "swe_Latn", "sw": "swh_Latn", "th": "tha_Thai", "tr": "tur_Latn",
    "uk": "ukr_Cyrl", "ur": "urd_Arab", "vi": "vie_Latn", "zh": "zho_Hans",
}


def model_language_token(family: str, code: str) -> str:
    """The token a multilingual model uses for ``code`` (``family``: 'nllb' or 'm2m100')."""
    if family == "nllb":
        return NLLB_CODES.get(code, code)
    if family == "m2m100":
        return f"__{code}__"
    raise ValueError(f"unknown multilingual model family {family!r}")


def marian_pair_from_name(name: str) -> tuple[str, str] | None:
    """('en', 'de') from names like 'Helsinki-NLP/opus-mt-en-de'; None when the name does not say."""
    tail = name.rstrip("/").rsplit("/", 1)[-1]
    parts = tail.split("-")
    if len(parts) >= 2 and all(2 <= len(p) <= 3 and p.isalpha() for p in parts[-2:]):
        return parts[-2], parts[-1]
    return None


def model_family(model_type: str, tokenizer_class: str) -> str:
    """'marian', 'nllb' or 'm2m100', from a model's config type and its tokenizer class name."""
    if model_type == "marian" or "Marian" in tokenizer_class:
        return "marian"
    if "Nllb" in tokenizer_class:
        return "nllb"
    if model_type == "m2m_100" or "M2M100" in tokenizer_class:
        return "m2m100"
    raise ModelNotFoundError(
        f"unsupported translation model ({model_type or tokenizer_class}); use MarianMT, NLLB or M2M100"
    )


def supports_pair(family: str, pair: tuple[str, str] | None, vocabulary: dict[str, int], source: str,
                  target: str) -> bool:
    """A Marian model translates its one pair; NLLB/M2M100 any two languages whose tokens they know."""
    if family == "marian":
        return (source, target) == pair
    return all(model_language_token(family, code) in vocabulary for code in (source, target))
