"""Whisper on transformers/torch: any torch device (fp16/bf16 on GPUs, SDPA attention), batched.

Loads a transformers Whisper folder, or a CTranslate2 one converted in memory (``whisper_convert``).
The encoder runs on windows shorter than 30 s too (transformers' own forward refuses them), so it is
driven layer by layer here. Decoding follows CTranslate2's beam search so that both engines give the
same text on the same weights: 2k candidates per step, an <|endoftext|> among the top k ends that
hypothesis, the search stops once k have ended, the winner is the best log-probability per token with
the forced prefix counted in both; blank and end-of-text are masked at the first step after the
prefix. Greedy when ``beam_size`` is 1, sampling above temperature 0, batched over requests with a KV
cache; prompts of different lengths are left-padded with a mask and per-row positions.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .asr import SAMPLING_SEED, Generation, Prompt

_DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16", "auto": None}


def load_transformers_whisper(model_dir: Path):
    """A ``WhisperForConditionalGeneration`` from a transformers folder or a CTranslate2 one."""
    if (model_dir / "model.bin").exists():
        from .whisper_convert import load_ct2_as_transformers

        return load_ct2_as_transformers(model_dir)
    from transformers import WhisperForConditionalGeneration

    return WhisperForConditionalGeneration.from_pretrained(model_dir, attn_implementation="sdpa")


def _dtype_name(compute_type: str, device: str) -> str:
    name = _DTYPES.get(compute_type, "invalid")
    if name == "invalid":
        raise ValueError(f"compute type {compute_type!r} does not suit the transformers engine; "
                         "use float32, float16, bfloat16 or auto")
    return name or ("float32" if device.startswith("cpu") else "float16")


def _suppressed_ids(model_dir: Path, model) -> tuple[list[int], list[int]]:
    """Tokens never generated, and tokens not generated first (CTranslate2's config, else transformers')."""
    ct2_config = model_dir / "config.json"
    if (model_dir / "model.bin").exists() and ct2_config.exists():
        config = json.loads(ct2_config.read_text())
        return list(config.get("suppress_ids", [])), list(config.get("suppress_ids_begin", []))
    generation = getattr(model, "generation_config", None) or model.config
    return list(generation.suppress_tokens or []), list(generation.begin_suppress_tokens or [])


def run_encoder(encoder, features: np.ndarray, device, dtype):
    """Whisper's encoder (a transformers ``WhisperEncoder``) on log-mel ``features`` [B, n_mels, frames],
    for windows up to 30 s, driven layer by layer: transformers' own forward refuses shorter ones."""
    import torch

    with torch.inference_mode():
        x = torch.from_numpy(features).to(device, dtype)
        x = torch.nn.functional.gelu(encoder.conv1(x))
        x = torch.nn.functional.gelu(encoder.conv2(x)).permute(0, 2, 1)
        x = x + encoder.embed_positions.weight[: x.shape[1]]
        for layer in encoder.layers:
            x = layer(x, attention_mask=None)
        return encoder.layer_norm(x)


class TorchEncoder:
    """Whisper's encoder alone on torch, for the ``hybrid`` engine: CTranslate2 decodes from its output.

    On CPUs with AMX its matrix products run in bfloat16 (torch's autocast): a 30 s window encodes 2.5x
    faster than with CTranslate2's int8 (0.16 s against 0.41 s, base, 2 cores), and its output is nearer
    the float32 encoder's (relative RMS error 1.1-1.8 % against 5.6-5.7 %). Weights, norms and the
    residual stream stay float32: all in bfloat16 was 0.03 s faster but twice as far from float32, and on
    tiny.en it made more word errors. Without AMX, bfloat16 has no hardware to run on (5.5 s for that
    window on an AVX2 CPU), so the encoder runs in float32 there (docs/decisions.md)."""

    def __init__(self, encoder, threads: int = 0, dtype_name: str | None = None) -> None:
        """``dtype_name``: ``bfloat16`` or ``float32`` for the matrix products; None picks by the CPU."""
        import torch

        from .devices import cpu_has_amx_bf16

        if threads > 0:
            torch.set_num_threads(threads)
        self._torch = torch
        self.dtype_name = dtype_name or ("bfloat16" if cpu_has_amx_bf16() else "float32")
        if self.dtype_name not in ("bfloat16", "float32"):
            raise ValueError(f"the torch encoder computes in bfloat16 or float32, not {self.dtype_name!r}")
        self._encoder = encoder.to("cpu", torch.float32).eval()

    @classmethod
    def load(cls, model_dir: str | Path, threads: int = 0, dtype_name: str | None = None) -> "TorchEncoder":
        """The encoder of a transformers Whisper folder or a CTranslate2 one (converted in memory)."""
        return cls(load_transformers_whisper(Path(model_dir)).model.encoder, threads, dtype_name)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """Encoder output [B, frames / 2, d_model] as float32, what CTranslate2's decoder takes."""
        torch = self._torch
        products = (torch.autocast("cpu", dtype=torch.bfloat16) if self.dtype_name == "bfloat16"
                    else contextlib.nullcontext())
        with products:
            return run_encoder(self._encoder, features, "cpu", torch.float32).float().numpy()


class TorchWhisperBackend:
    kind = "transformers"
    lanes = 1

    def __init__(self, model, tokenizer_file: Path, device: str = "cpu", compute_type: str = "auto",
                 suppress: Sequence[int] = (), suppress_begin: Sequence[int] = ()) -> None:
        """Serve ``model`` (a ``WhisperForConditionalGeneration``) on ``device``; ``tokenizer_file`` gives
        the special tokens' ids."""
        import tokenizers
        import torch
        from faster_whisper.tokenizer import _LANGUAGE_CODES, Tokenizer

        dtype_name = _dtype_name(compute_type, device)
        self.torch = torch
        self.dtype = getattr(torch, dtype_name)
        self.device = f"{device}/{dtype_name}"
        self._device = torch.device(device)
        model.config._attn_implementation = "sdpa"
        self._model = model.to(self._device, self.dtype).eval()
        self._cache_config = copy.deepcopy(model.config)  # the KV caches size themselves by the decoder
        self._cache_config.num_hidden_layers = model.config.decoder_layers
        self.n_mels = int(model.config.num_mel_bins)
        self.multilingual = int(model.config.vocab_size) >= 51865
        # transformers renamed the decoder layers' ``past_key_values`` argument to ``cache`` in 5.x.
        layer_arguments = inspect.signature(type(self._model.model.decoder.layers[0]).forward).parameters
        self._cache_argument = "cache" if "cache" in layer_arguments else "past_key_values"
        tokenizer = Tokenizer(tokenizers.Tokenizer.from_file(str(tokenizer_file)), self.multilingual,
                              task="transcribe", language="en")
        self._eot, self._sot, self._no_speech = tokenizer.eot, tokenizer.sot, tokenizer.no_speech
        self._no_timestamps, self._timestamp_begin = tokenizer.no_timestamps, tokenizer.timestamp_begin
        vocab = model.config.vocab_size
        languages = {code: tokenizer.tokenizer.token_to_id(f"<|{code}|>") for code in _LANGUAGE_CODES} if self.multilingual else {}
        languages = {code: token for code, token in languages.items() if token is not None and token < vocab}
        self._language_codes = list(languages)
        self._language_ids = torch.tensor(list(languages.values()), device=self._device, dtype=torch.long)
        self._suppress = torch.tensor([t for t in suppress if 0 <= t < vocab], device=self._device, dtype=torch.long)
        self._suppress_begin = torch.tensor([t for t in suppress_begin if 0 <= t < vocab], device=self._device, dtype=torch.long)

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "cpu", compute_type: str = "auto") -> "TorchWhisperBackend":
        """From a transformers Whisper folder or a CTranslate2 one (converted in memory)."""
        path = Path(model_dir)
        _dtype_name(compute_type, device)  # refuse a bad compute type before loading anything
        model = load_transformers_whisper(path)
        suppress, suppress_begin = _suppressed_ids(path, model)
        return cls(model, path / "tokenizer.json", device, compute_type, suppress, suppress_begin)

    # -- encoder ---------------------------------------------------------------------------------
    def encode(self, features: np.ndarray):
        return run_encoder(self._model.model.encoder, features, self._device, self.dtype)

    # -- decoder ---------------------------------------------------------------------------------
    def _new_cache(self):
        from transformers.cache_utils import DynamicCache, EncoderDecoderCache

        return EncoderDecoderCache(DynamicCache(config=self._cache_config), DynamicCache(config=self._cache_config))

    def _decoder_step(self, tokens, positions, key_mask, encoded, cache):
        """Hidden states of ``tokens`` [B, T] at ``positions`` [B, T]; ``key_mask`` [B, past+T] marks real tokens."""
        torch = self.torch
        decoder = self._model.model.decoder
        hidden = decoder.embed_tokens(tokens) + decoder.embed_positions.weight[positions]
        steps, keys = tokens.shape[1], key_mask.shape[1]
        causal = torch.ones(steps, keys, dtype=torch.bool, device=self._device).tril(keys - steps)
        allowed = causal[None, None] & key_mask[:, None, None, :]
        mask = torch.zeros(allowed.shape, dtype=self.dtype, device=self._device)
        mask.masked_fill_(~allowed, torch.finfo(self.dtype).min)
        for layer in decoder.layers:
            hidden = layer(hidden, attention_mask=mask, encoder_hidden_states=encoded, use_cache=True,
                           **{self._cache_argument: cache})
        return decoder.layer_norm(hidden)

    def _logits(self, hidden):
        return self._model.proj_out(hidden).float()

    def detect_language(self, encoded, rows: Sequence[int]) -> list[dict[str, float]]:
        torch = self.torch
        with torch.inference_mode():
            rows_t = torch.as_tensor(list(rows), device=self._device)
            tokens = torch.full((len(rows), 1), self._sot, device=self._device)
            hidden = self._decoder_step(tokens, torch.zeros_like(tokens), torch.ones_like(tokens, dtype=torch.bool),
                                        encoded[rows_t], self._new_cache())
            probs = self._logits(hidden[:, -1])[:, self._language_ids].softmax(-1).tolist()
        return [dict(zip(self._language_codes, row, strict=True)) for row in probs]

    def generate(self, encoded, rows: Sequence[int], prompts: Sequence[Prompt], *, beam_size: int,
                 temperature: float, max_length: int) -> list[Generation]:
        torch = self.torch
        beams = beam_size if temperature == 0 else 1
        with torch.inference_mode():
            return _BeamSearch(self, encoded[torch.as_tensor(list(rows), device=self._device)], prompts,
                               beams, temperature, max_length).run()


class _BeamSearch:
    """One batched decode: ``len(prompts)`` requests × ``beams`` hypotheses each."""

    def __init__(self, backend: TorchWhisperBackend, encoded, prompts: Sequence[Prompt], beams: int,
                 temperature: float, max_length: int) -> None:
        self.b = backend
        self.torch = backend.torch
        self.encoded = encoded
        self.prompts = prompts
        self.beams = beams
        self.temperature = temperature
        self.max_length = max_length
        self.generator = None if temperature == 0 else \
            backend.torch.Generator(device=backend._device).manual_seed(SAMPLING_SEED)
        # Requests decoding in timestamp mode: no <|notimestamps|> between <|sot|> and the prefix.
        self.timed = [backend._no_timestamps not in p.tokens[p.sot_index : p.prefix_start] for p in prompts]

    def _timestamp_rules(self, logits, seqs: Sequence[list[int]], timed: Sequence[bool] | None = None):
        """Whisper's timestamp rules for rows whose ``seqs`` are the tokens since sampling began:
        a timestamp first, then timestamps in pairs, never decreasing, and a timestamp whenever all of
        them together are likelier than any text token. ``timed`` says which rows decode with timestamps
        (default: by request, each request's hypotheses in consecutive rows)."""
        if timed is None:
            per_request = len(seqs) // len(self.prompts)
            timed = [self.timed[row // per_request] for row in range(len(seqs))]
        if not any(timed):
            return logits
        begin, eot, inf = self.b._timestamp_begin, self.b._eot, float("inf")
        check = []
        for row, seq in enumerate(seqs):
            if not timed[row]:
                continue
            logits[row, self.b._no_timestamps] = -inf
            if not seq:
                logits[row, :begin] = -inf
                continue
            if seq[-1] >= begin:
                penultimate = seq[-2] if len(seq) > 1 else seq[-1]
                if penultimate >= begin:
                    logits[row, begin:] = -inf
                else:
                    logits[row, :eot] = -inf
                    check.append(row)
            else:
                check.append(row)
            last_time = next((t for t in reversed(seq) if t >= begin), None)
            if last_time is not None:
                logits[row, begin:last_time] = -inf
        if check:
            logprobs = logits[check].log_softmax(-1)
            timestamp_wins = logprobs[:, begin:].logsumexp(-1) > logprobs[:, :begin].max(-1).values
            for row, wins in zip(check, timestamp_wins.tolist(), strict=True):
                if wins:
                    logits[row, :begin] = -inf
        return logits

    def _suppress(self, logits, first=None):
        """Mask tokens never generated; ``first`` (a row mask) also masks what may not come first."""
        logits[:, self.b._suppress] = -float("inf")
        if first is not None and bool(first.any()):
            rows = first.nonzero().squeeze(-1)
            logits[rows[:, None], self.b._suppress_begin[None, :]] = -float("inf")
        return logits

    def _prefix_scores(self, hidden, offsets: list[int]) -> list[float]:
        """Log-probability of each request's forced prefix, scored like generated tokens (CTranslate2
        ranks hypotheses by the whole sequence after the task tokens, prefix included)."""
        torch = self.torch
        scores = []
        for i, prompt in enumerate(self.prompts):
            prefix = prompt.tokens[prompt.prefix_start:]
            if not prefix:
                scores.append(0.0)
                continue
            start = offsets[i] + prompt.prefix_start - 1
            logits = self._suppress(self.b._logits(hidden[i, start : start + len(prefix)]))
            forced = torch.tensor(prefix, device=logits.device)[:, None]
            logprobs = logits.log_softmax(-1).gather(1, forced)
            if self.timed[i]:  # a timestamped prefix is scored under the timestamp rules, as if generated,
                ruled = self._timestamp_rules(logits.clone(), [prefix[:j] for j in range(len(prefix))],
                                              [True] * len(prefix)).log_softmax(-1).gather(1, forced)
                logprobs = torch.where(torch.isfinite(ruled), ruled, logprobs)  # unless they forbid a forced token
            scores.append(float(logprobs.sum()))
        return scores

    def _choose(self, logits):
        """Next-token log-probabilities; with sampling, the sampled token's alone (others -inf)."""
        torch = self.torch
        logprobs = logits.log_softmax(-1)
        if self.temperature == 0:
            return logprobs
        sampled = torch.multinomial((logits / self.temperature).softmax(-1), 1, generator=self.generator)
        only = torch.full_like(logprobs, -float("inf"))
        return only.scatter_(1, sampled, logprobs.gather(1, sampled))

    def run(self) -> list[Generation]:
        torch, b = self.torch, self.b
        n, k = len(self.prompts), self.beams
        width = max(len(p.tokens) for p in self.prompts)
        tokens = torch.full((n, width), b._eot, dtype=torch.long, device=b._device)
        real = torch.zeros((n, width), dtype=torch.bool, device=b._device)
        for i, prompt in enumerate(self.prompts):
            tokens[i, width - len(prompt.tokens):] = torch.tensor(prompt.tokens, device=b._device)
            real[i, width - len(prompt.tokens):] = True
        cache = b._new_cache()
        hidden = b._decoder_step(tokens, (real.long().cumsum(-1) - 1).clamp(min=0), real, self.encoded, cache)
        offsets = [width - len(p.tokens) for p in self.prompts]
        sot_rows = torch.tensor([offset + p.sot_index for offset, p in zip(offsets, self.prompts, strict=True)], device=b._device)
        no_speech = b._logits(hidden[torch.arange(n, device=b._device), sot_rows]).softmax(-1)[:, b._no_speech]
        prefix_scores = self._prefix_scores(hidden, offsets)
        self.prefix_lengths = [len(p.tokens) - p.prefix_start for p in self.prompts]
        # What may not come first is masked at the first step after the prefix (as in CTranslate2).
        first_step = torch.ones(n, dtype=torch.bool, device=b._device)
        logits = self._suppress(b._logits(hidden[:, -1]), first=first_step)
        logprobs = self._choose(self._timestamp_rules(logits, [[] for _ in range(n)]))
        encoded = self.encoded
        if k > 1:  # the prompt is read once per request; its hypotheses share it from here on
            cache.batch_repeat_interleave(k)
            encoded, real, logprobs = (t.repeat_interleave(k, 0) for t in (encoded, real, logprobs))
        sums = torch.zeros((n, k), device=b._device)
        sums[:, 0] = torch.tensor(prefix_scores, device=b._device)
        sums[:, 1:] = -float("inf")  # at the first step only one hypothesis per request is alive
        seqs: list[list[int]] = [[] for _ in range(n * k)]
        finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(n)]
        for step in range(max(1, self.max_length - width)):
            order, next_tokens, new_sums, seqs = self._advance(sums.reshape(-1), logprobs, seqs, finished)
            alive = list(zip(new_sums, seqs, strict=True))
            if all(len(f) >= k for f in finished) or step == self.max_length - width - 1:
                break
            order_t = torch.tensor(order, device=b._device)
            cache.reorder_cache(order_t)
            real = torch.cat([real[order_t], torch.ones((n * k, 1), dtype=torch.bool, device=b._device)], dim=1)
            step_tokens = torch.tensor(next_tokens, device=b._device)[:, None]
            hidden = b._decoder_step(step_tokens, real.long().sum(-1, keepdim=True) - 1, real, encoded, cache)
            logprobs = self._choose(self._timestamp_rules(self._suppress(b._logits(hidden[:, -1])), seqs))
            sums = torch.tensor(new_sums, device=b._device).reshape(n, k)
        return [self._best(i, finished[i] or alive[i * k:(i + 1) * k], float(no_speech[i])) for i in range(n)]

    def _advance(self, sums, logprobs, seqs, finished):
        """One step of every request's search: the ``k`` best continuations, ended hypotheses recorded."""
        k, eot = self.beams, self.b._eot
        vocab = logprobs.shape[-1]
        scores = (sums[:, None] + logprobs).reshape(len(finished), k * vocab)
        values, indices = (t.tolist() for t in scores.topk(2 * k, dim=-1))
        order, next_tokens, new_sums, new_seqs = [], [], [], []
        for i, request_finished in enumerate(finished):
            alive = 0
            if len(request_finished) < k:
                for rank, (score, index) in enumerate(zip(values[i], indices[i], strict=True)):
                    if score == -float("inf"):
                        break
                    row, token = i * k + index // vocab, index % vocab
                    if token == eot:  # as in CTranslate2, an ending counts only among the top k
                        if rank < k:
                            request_finished.append((score, seqs[row]))
                        continue
                    order.append(row)
                    next_tokens.append(token)
                    new_sums.append(score)
                    new_seqs.append(seqs[row] + [token])
                    alive += 1
                    if alive == k:
                        break
            for _ in range(k - alive):  # an ended request keeps placeholder rows so shapes stay fixed
                order.append(i * k)
                next_tokens.append(eot)
                new_sums.append(-float("inf"))
                new_seqs.append([])
        return order, next_tokens, new_sums, new_seqs

    def _best(self, i: int, hypotheses, no_speech: float) -> Generation:
        """The hypothesis with the best log-probability per token (forced prefix included)."""
        prefix = self.prefix_lengths[i]
        score, seq = max(hypotheses, key=lambda h: h[0] / max(1, prefix + len(h[1])))
        prompt = self.prompts[i]
        return Generation(
            tokens=prompt.tokens[prompt.prefix_start:] + seq,
            avg_logprob=score / (prefix + len(seq) + 1),
            no_speech_prob=no_speech,
        )
