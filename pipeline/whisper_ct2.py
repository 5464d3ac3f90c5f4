"""Whisper on CTranslate2 (faster-whisper's runtime): CPU, or CUDA 12 GPUs.

CTranslate2 batches the encoder freely, but its ``generate`` requires every prompt of a batch to put
<|startoftranscript|> at the same index, to have the same length and the same decoding mode (with or
without timestamps); requests are grouped by that shape and each group is one ``generate`` call on
the rows of the shared encoder output.
"""

from __future__ import annotations

import contextlib
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from .asr import LAST_TIMESTAMP_INDEX, SAMPLING_SEED, Generation, Prompt


def _ct2_max_length(max_length: int, prefix_start: int) -> int:
    """CTranslate2's ``max_length`` that lets the whole decoder sequence reach ``max_length`` tokens.

    Its Whisper returns at most half of its ``max_length`` in tokens after the ones before the prefix,
    and stops where the sequence reaches ``max_length - 1`` positions (measured with 4.8.5). Passed
    through unchanged, a request without a previous-text prompt got half its token budget."""
    may_follow = max_length - prefix_start
    return max(2 * may_follow, max_length - 1)


class CTranslate2Backend:
    kind = "CTranslate2"

    def __init__(self, model_dir: str, device: str = "cpu", compute_type: str = "int8", cpu_threads: int = 0,
                 encoder: Callable[[np.ndarray], np.ndarray] | None = None, decoder_threads: int = 0,
                 lanes: int = 1, solo_beams_when: Callable[[], bool] | None = None) -> None:
        """``encoder``, when given, replaces CTranslate2's own encoder: it maps log-mel features to the
        float32 encoder output (the ``hybrid`` engine's ``TorchEncoder``). On the CPU, ``decoder_threads``
        (0: as ``cpu_threads``) run the decoder; where they differ from ``cpu_threads``, a second instance of
        the model with ``cpu_threads`` encodes. ``lanes`` callers may decode at once, each on its own
        replica of the model (CTranslate2 shares the weights between them); encodes, which use every
        thread, run one at a time. With ``solo_beams_when``, a beam search (a final) that starts while the
        model runs nothing else, and while ``solo_beams_when()`` holds, decodes on the encoder's instance,
        on ``cpu_threads`` (``devices.resolve_solo_beams_on_all_threads``)."""
        import ctranslate2

        # Each CTranslate2 thread seeds its sampler once, at its first draw, from this process-wide seed
        # (random by default): a process then repeats its sampled fallbacks for the same requests in the
        # same order (the torch backend seeds every call).
        ctranslate2.set_random_seed(SAMPLING_SEED)
        device_type, _, index = device.partition(":")

        def load(threads: int, replicas: int = 1):
            return ctranslate2.models.Whisper(model_dir, device=device_type, device_index=int(index or 0),
                                              compute_type=compute_type, intra_threads=threads,
                                              inter_threads=replicas)

        on_cpu = device_type == "cpu"
        decoder_threads = decoder_threads if on_cpu and decoder_threads > 0 else cpu_threads
        self.lanes = max(1, lanes)
        self._model = load(decoder_threads, self.lanes)
        # A CTranslate2 model has one thread count; the encoder's large products want them all.
        split = encoder is None and decoder_threads != cpu_threads
        self._encoder_model = load(cpu_threads) if split else self._model
        self._encode_lock = threading.Lock()
        # Such a beam search runs on the encoder's instance: an encode that comes meanwhile waits for it.
        # The condition asks for one open session: with two, it made finals later (docs/decisions.md).
        self._solo_beams_when = solo_beams_when if split else None
        # Each CTranslate2 thread seeds its sampler at its first draw and keeps drawing from it, so with
        # several replicas a sampled call's tokens would depend on which thread took it: sampled calls go
        # to an instance with one replica, where there is one (not where the lanes share the only instance:
        # the hybrid engine, or lanes with the decoder on every thread), and a process then repeats its
        # draws in the order it made them.
        self._sampling_model = self._encoder_model if split or self.lanes == 1 else None
        self._running = 0  # encodes and generates under way, to know when a beam search would run alone
        self._running_lock = threading.Lock()
        self.solo_beams = 0  # beam searches run on every thread
        self.device = f"{device}/{compute_type}"
        if on_cpu and decoder_threads != cpu_threads:
            self.device += f", decoder on {decoder_threads} thread{'s' if decoder_threads > 1 else ''}"
        if self._solo_beams_when is not None:
            self.device += f" ({cpu_threads or 'all'} for a final decoded alone)"
        if self.lanes > 1:
            self.device += f", {self.lanes} lanes"
        self._encoder = encoder
        if encoder is not None:
            self.kind = f"CTranslate2 + torch encoder ({getattr(encoder, 'dtype_name', 'custom')})"
        self.multilingual = bool(self._model.is_multilingual)
        self.n_mels = int(self._model.n_mels)

    def encode(self, features: np.ndarray) -> Any:
        import ctranslate2

        with self._encode_lock, self._run():
            if self._encoder is not None:
                return ctranslate2.StorageView.from_array(np.ascontiguousarray(self._encoder(features), np.float32))
            return self._encoder_model.encode(ctranslate2.StorageView.from_array(features), to_cpu=False)

    @contextlib.contextmanager
    def _run(self) -> Iterator[bool]:
        """Count a call under way for its duration; yields whether it started alone."""
        with self._running_lock:
            alone = self._running == 0
            self._running += 1
        try:
            yield alone
        finally:
            with self._running_lock:
                self._running -= 1

    def detect_language(self, encoded: Any, rows: Sequence[int]) -> list[dict[str, float]]:
        results = self._model.detect_language(self._rows(encoded, rows))
        return [{token[2:-2]: float(p) for token, p in ranked} for ranked in results]  # "<|es|>" → "es"

    def generate(self, encoded: Any, rows: Sequence[int], prompts: Sequence[Prompt], *, beam_size: int,
                 temperature: float, max_length: int) -> list[Generation]:
        groups: dict[tuple[int, int, int], list[int]] = defaultdict(list)
        for i, prompt in enumerate(prompts):
            # The prefix start also separates timestamp mode from <|notimestamps|> prompts, which one
            # CTranslate2 call cannot mix.
            groups[(prompt.sot_index, prompt.prefix_start, len(prompt.tokens))].append(i)
        sampling = {"beam_size": beam_size} if temperature == 0 else {
            "beam_size": 1, "sampling_topk": 0, "sampling_temperature": temperature,
        }
        out: list[Generation | None] = [None] * len(prompts)
        with self._run() as alone:
            model = self._model
            if alone and beam_size > 1 and self._solo_beams_when is not None and self._solo_beams_when():
                model, self.solo_beams = self._encoder_model, self.solo_beams + 1
            elif temperature > 0 and self._sampling_model is not None:
                model = self._sampling_model
            for (_, prefix_start, _), members in groups.items():
                results = model.generate(
                    self._rows(encoded, [rows[i] for i in members]), [prompts[i].tokens for i in members],
                    max_length=_ct2_max_length(max_length, prefix_start), return_scores=True,
                    return_no_speech_prob=True, suppress_blank=True, suppress_tokens=[-1],
                    max_initial_timestamp_index=LAST_TIMESTAMP_INDEX, **sampling,
                )
                for i, result in zip(members, results, strict=True):
                    tokens = result.sequences_ids[0]
                    avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
                    out[i] = Generation(tokens, avg_logprob, result.no_speech_prob)
        return out  # type: ignore[return-value]

    @staticmethod
    def _rows(encoded: Any, rows: Sequence[int]) -> Any:
        """The encoder output of ``rows`` (the whole batch when they are all of it, in order)."""
        import ctranslate2

        if list(rows) == list(range(encoded.shape[0])):
            return encoded
        if encoded.device == "cpu":
            return ctranslate2.StorageView.from_array(np.ascontiguousarray(np.asarray(encoded)[list(rows)]))
        import torch  # CUDA: gather through torch's view of the same device memory

        index = torch.as_tensor(list(rows), device=f"cuda:{encoded.device_index}")
        return ctranslate2.StorageView.from_array(torch.as_tensor(encoded, device=f"cuda:{encoded.device_index}")[index].contiguous())
