"""Translation backends and routing: the real bergamot models, and the transformers / ctranslate2
backends on a tiny random MarianMT that this test builds (no such weights can be downloaded here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline import TranslationUnavailableError, UnsupportedLanguageError
from pipeline.translation import RouteKind, TranslationRouter
from pipeline.translation.bergamot import BergamotTranslator
from pipeline.translation.languages import marian_pair_from_name, model_family, model_language_token

SENTENCES = [
    "the conference is now unmuted", "please enter your password", "press one to list users",
    "good morning everyone", "the call cannot be completed", "you have been removed from the conference",
    "a conferencia agora esta ativa", "por favor digite sua senha", "bom dia a todos",
]


@pytest.fixture(scope="module")
def bergamot() -> BergamotTranslator:
    return BergamotTranslator()


def test_bergamot_translates_both_ways(bergamot):
    pt = bergamot.translate(["Please enter your password.", ""], "en", "pt")
    assert "senha" in pt[0].lower() and pt[1] == ""
    assert "good morning" in bergamot.translate(["Bom dia a todos."], "pt", "en")[0].lower()


def test_routes(bergamot):
    router = TranslationRouter([bergamot], speech_to_english=True)
    assert router.route("en", "en", has_audio=True).kind is RouteKind.IDENTITY
    assert router.route("en", "pt", has_audio=True).kind is RouteKind.TEXT
    assert router.route("es", "en", has_audio=True).kind is RouteKind.SPEECH
    pivot = router.route("es", "pt", has_audio=True)
    assert pivot.kind is RouteKind.PIVOT and pivot.describe() == "es → en → pt"
    assert pivot.legs[0].backend is None and pivot.legs[1].backend is bergamot
    with pytest.raises(TranslationUnavailableError, match="'es' to 'pt'"):
        router.route("es", "pt", has_audio=False)  # typed Spanish: no text model for es → en
    with pytest.raises(TranslationUnavailableError, match="bergamot"):
        TranslationRouter([bergamot], speech_to_english=False).route("fr", "en", has_audio=True)
    with pytest.raises(UnsupportedLanguageError, match="'Portuguese' is not a language code"):
        router.route("en", "Portuguese", has_audio=False)
    assert not router.can_route("en", "Portuguese", has_audio=False)


def test_language_codes():
    assert model_language_token("nllb", "pt") == "por_Latn"
    assert model_language_token("m2m100", "pt") == "__pt__"
    assert marian_pair_from_name("Helsinki-NLP/opus-mt-en-de") == ("en", "de")
    assert marian_pair_from_name("/models/my-model") is None
    assert model_family("m2m_100", "NllbTokenizerFast") == "nllb"
    assert model_family("m2m_100", "M2M100Tokenizer") == "m2m100"


@pytest.fixture(scope="module")
def tiny_marian(tmp_path_factory) -> Path:
    """A random-weight MarianMT with a sentencepiece vocabulary trained on a few sentences."""
    pytest.importorskip("torch", reason="the [hf] extra (torch, transformers) is not installed")
    import sentencepiece as spm
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    folder = tmp_path_factory.mktemp("tiny-marian")
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(SENTENCES * 3))
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(folder / "spm"), vocab_size=48,
                                   character_coverage=1.0, model_type="unigram", bos_id=-1, eos_id=-1,
                                   pad_id=-1, unk_id=0, minloglevel=2)
    processor = spm.SentencePieceProcessor(model_file=str(folder / "spm.model"))
    vocab = {processor.id_to_piece(i): i for i in range(processor.get_piece_size())}
    vocab["</s>"] = len(vocab)
    vocab["<pad>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    for name in ("source.spm", "target.spm"):
        (folder / name).write_bytes((folder / "spm.model").read_bytes())
    tokenizer = MarianTokenizer(str(folder / "source.spm"), str(folder / "target.spm"), str(folder / "vocab.json"),
                                source_lang="en", target_lang="xx")
    config = MarianConfig(vocab_size=len(vocab), d_model=16, encoder_layers=1, decoder_layers=1,
                          encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                          decoder_ffn_dim=32, max_position_embeddings=64, pad_token_id=vocab["<pad>"],
                          eos_token_id=vocab["</s>"], decoder_start_token_id=vocab["<pad>"])
    import torch

    torch.manual_seed(0)
    model_dir = folder / "model"
    MarianMTModel(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return model_dir


def test_transformers_backend_batches_and_places_on_device(tiny_marian):
    from pipeline.translation.hf import TransformersTranslator

    translator = TransformersTranslator(str(tiny_marian), device="cpu", pair=("en", "xx"), max_new_tokens=8)
    assert translator.family == "marian"
    assert translator.supports("en", "xx") and not translator.supports("en", "de")
    assert next(translator._model.parameters()).device.type == "cpu"
    texts = ["good morning everyone", "press one", "please enter your password now"]
    batched = translator.translate(texts, "en", "xx")
    assert len(batched) == 3 and all(isinstance(t, str) for t in batched)
    assert batched == [translator.translate([t], "en", "xx")[0] for t in texts]  # padding does not leak
    assert translator.translate([], "en", "xx") == []


def test_ctranslate2_backend_matches_transformers(tiny_marian, tmp_path):
    import ctranslate2

    from pipeline.translation.ct2 import CTranslate2Translator
    from pipeline.translation.hf import TransformersTranslator

    converted = tmp_path / "ct2"
    ctranslate2.converters.TransformersConverter(str(tiny_marian)).convert(str(converted))
    fast = CTranslate2Translator(str(converted), tokenizer=str(tiny_marian), compute_type="float32",
                                 pair=("en", "xx"), beam_size=1, max_new_tokens=11)
    # a random model never ends a sentence: both stop at the length limit, which transformers counts
    # with the end token and CTranslate2 without
    reference = TransformersTranslator(str(tiny_marian), pair=("en", "xx"), max_new_tokens=12, num_beams=1)
    assert fast.family == "marian" and fast.supports("en", "xx")
    texts = ["good morning everyone", "press one to list users"]
    assert fast.translate(texts, "en", "xx") == reference.translate(texts, "en", "xx")


def test_translation_requests_from_many_sessions_share_one_call_per_pair(bergamot):
    from pipeline.translation.batching import TranslationRequest, translate_batch

    calls: list[tuple[str, str, int]] = []

    class Counting:  # the real model, with its calls counted
        name = bergamot.name

        def supports(self, source, target):
            return bergamot.supports(source, target)

        def translate(self, texts, source, target):
            calls.append((source, target, len(texts)))
            return bergamot.translate(texts, source, target)

    model = Counting()
    requests = [TranslationRequest(model, ("Good morning.",), "en", "pt"),
                TranslationRequest(model, ("Bom dia.",), "pt", "en"),
                TranslationRequest(model, ("Thank you.", "Goodbye."), "en", "pt")]
    results = translate_batch(requests)
    assert sorted(calls) == [("en", "pt", 3), ("pt", "en", 1)]
    assert results == [bergamot.translate(list(r.texts), r.source, r.target) for r in requests]
