"""Load the shared models once per process and own the workers that run them.

Sessions reach the models only through ``Engines.decode``, ``detect_language``, ``detect_text_language``
and ``translate``: each is a request to a model worker, batched there with other sessions' requests.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .asr import AsrEngine, DecodeOptions, DecodeRequest, DecodeResult, WhisperEngine
from .devices import (
    Device,
    resolve_asr_lanes,
    resolve_decoder_threads,
    resolve_device,
    resolve_engine,
    resolve_solo_beams_on_all_threads,
)
from .memory import release_free_memory
from .models import resolve_whisper_model
from .scheduler import ModelWorker, Priority
from .translation import TextTranslator, TranslationRouter, load_translator
from .translation.batching import TranslationRequest, translate_batch
from .translation.text_language import detect_text_language
from .vad import SileroVadModel

log = logging.getLogger(__name__)

# GPUs: large batches, and a few ms of waiting for company pays. CPUs: batch only what is already
# waiting (under load: 2x partial throughput, lower p50/p99; never a wait at light load; README).
_GPU_MAX_BATCH = 16
_GPU_BATCH_WAIT_S = 0.005
_CPU_MAX_BATCH = 4


@dataclass(frozen=True)
class EngineConfig:
    """Which models to load and where to run them."""

    asr_model: str = "base"
    asr_engine: str = "auto"  # auto, ctranslate2, transformers, hybrid (CTranslate2 behind a torch encoder)
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    compute_type: str = "auto"  # auto: int8 (CTranslate2, hybrid) / float32 (transformers) on CPU, float16 on GPU
    cpu_threads: int = 0  # 0: the runtime's default (all cores)
    decoder_threads: int = 0  # CTranslate2's decoder on CPU; 0: devices.resolve_decoder_threads decides
    asr_lanes: int = 0  # ASR requests run at once; 0: devices.resolve_asr_lanes decides
    translators: tuple[str, ...] = ("bergamot",)
    max_pending_requests: int = 256
    max_batch: int = 0  # requests per model call; 0: 4 on CPU, 16 on GPU
    batch_wait_ms: float = -1.0  # how long a batch waits for company; < 0: 0 on CPU, 5 ms on GPU


@dataclass
class OpenSessions:
    """How many sessions are open on one ``Engines`` (set on the event loop, read by the ASR backend)."""

    count: int = 0

    def at_most_one(self) -> bool:
        return self.count <= 1


def load_asr_engine(config: EngineConfig, sessions: OpenSessions | None = None) -> tuple[AsrEngine, Device]:
    """The Whisper engine the config asks for, on its resolved device. With ``sessions``, a final that
    starts while the model runs nothing else and at most one session is open may decode on every thread,
    where that pays (``devices.resolve_solo_beams_on_all_threads``)."""
    engine = resolve_engine(config.asr_engine, config.device)
    device = resolve_device(config.device, config.compute_type, engine)
    decoder_threads = resolve_decoder_threads(config.decoder_threads, config.cpu_threads)
    lanes = resolve_asr_lanes(config.asr_lanes, engine, device, decoder_threads)
    path = resolve_whisper_model(config.asr_model)
    log.info("loading Whisper %s from %s with %s on %s/%s", config.asr_model, path, engine, device, device.compute_type)
    if engine == "transformers":
        from .whisper_torch import TorchWhisperBackend

        backend = TorchWhisperBackend.load(path, device=str(device), compute_type=device.compute_type)
    else:
        from .whisper_ct2 import CTranslate2Backend

        encoder = None
        if engine == "hybrid":
            from .whisper_torch import TorchEncoder

            encoder = TorchEncoder.load(path, threads=config.cpu_threads)
        solo = resolve_solo_beams_on_all_threads(config.decoder_threads, decoder_threads, config.cpu_threads)
        backend = CTranslate2Backend(
            str(path), device=str(device), compute_type=device.compute_type, cpu_threads=config.cpu_threads,
            encoder=encoder, decoder_threads=decoder_threads, lanes=lanes,
            solo_beams_when=sessions.at_most_one if sessions is not None and solo else None,
        )
    return WhisperEngine(backend, path, name=config.asr_model), device


@dataclass
class Engines:
    """Everything a session needs from the process: models, routing and the workers."""

    config: EngineConfig
    asr: AsrEngine
    vad: SileroVadModel
    translators: list[TextTranslator]
    router: TranslationRouter
    asr_worker: ModelWorker = field(repr=False)
    mt_worker: ModelWorker = field(repr=False)

    device: str = "cpu"
    sessions: OpenSessions = field(default_factory=OpenSessions)  # kept by ``Session``

    @classmethod
    def load(cls, config: EngineConfig) -> "Engines":
        """Load every model (blocking: call it from a thread at startup)."""
        sessions = OpenSessions()
        asr, device = load_asr_engine(config, sessions)
        translators = [load_translator(name) for name in config.translators]
        router = TranslationRouter(translators, speech_to_english=asr.multilingual)
        on_gpu = device.kind == "cuda"
        max_batch = config.max_batch or (_GPU_MAX_BATCH if on_gpu else _CPU_MAX_BATCH)
        wait_s = config.batch_wait_ms / 1000 if config.batch_wait_ms >= 0 else (_GPU_BATCH_WAIT_S if on_gpu else 0.0)
        return cls(
            config=config,
            asr=asr,
            vad=SileroVadModel(),
            translators=translators,
            router=router,
            asr_worker=ModelWorker("asr", config.max_pending_requests, max_batch, wait_s,
                                   after_batch=release_free_memory, lanes=asr.lanes),
            mt_worker=ModelWorker("mt", config.max_pending_requests, max_batch, wait_s),
            device=f"{device}/{device.compute_type}",
            sessions=sessions,
        )

    async def decode(self, audio: np.ndarray, options: DecodeOptions, priority: Priority) -> DecodeResult:
        """Decode ``audio`` on the ASR worker, batched with other sessions' requests."""
        return await self.asr_worker.submit(self.asr.decode_batch, DecodeRequest(audio, options), priority)

    async def detect_language(self, audio: np.ndarray, priority: Priority) -> dict[str, float]:
        """The probability that ``audio`` is spoken in each language Whisper knows (ISO codes)."""
        return await self.asr_worker.submit(self.asr.detect_language_batch, audio, priority)

    async def detect_text_language(self, text: str, targets: Sequence[str], candidates: Sequence[str] = ()) -> str:
        """The language ``text`` is written in; among plausible ones, one of the ``candidates`` (if any are
        given) that the loaded models translate into every target (on the MT worker: the first call loads
        fastText's model)."""

        def preferred(code: str) -> bool:
            return (not candidates or code in candidates) and all(
                self.router.can_route(code, target, has_audio=False) for target in targets)

        return await self.mt_worker.run(detect_text_language, text, preferred, priority=Priority.FINAL)

    async def translate(self, backend: TextTranslator, texts: list[str], source: str, target: str,
                        priority: Priority = Priority.FINAL) -> list[str]:
        """Translate ``texts`` on the MT worker, batched with other requests for the same model and pair."""
        return await self.mt_worker.submit(translate_batch, TranslationRequest(backend, tuple(texts), source, target), priority)

    def describe(self) -> dict[str, str]:
        """Model names for the ``ready`` message and ``/readyz``."""
        return {
            "asr": self.asr.describe(),
            "vad": "silero-vad",
            "mt": ", ".join(t.name for t in self.translators) + (", whisper-translate" if self.asr.multilingual else ""),
        }

    def close(self) -> None:
        self.asr_worker.close()
        self.mt_worker.close()
