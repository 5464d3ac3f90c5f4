"""Load the shared models once per process and own the workers that run them."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .asr import AsrEngine, FasterWhisperEngine
from .devices import resolve_device
from .models import resolve_whisper_model
from .scheduler import ModelWorker
from .translation import TextTranslator, TranslationRouter, load_translator
from .vad import SileroVadModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineConfig:
    """Which models to load and where to run them."""

    asr_model: str = "base"
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    compute_type: str = "auto"  # auto: int8 on CPU, float16 on GPU
    cpu_threads: int = 0  # 0: CTranslate2's default (all cores)
    translators: tuple[str, ...] = ("bergamot",)
    max_pending_requests: int = 256


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

    @classmethod
    def load(cls, config: EngineConfig) -> "Engines":
        """Load every model (blocking: call it from a thread at startup)."""
        device = resolve_device(config.device, config.compute_type)
        path = resolve_whisper_model(config.asr_model)
        log.info("loading Whisper %s from %s on %s/%s", config.asr_model, path, device, device.compute_type)
        asr = FasterWhisperEngine(
            str(path), name=config.asr_model, device=str(device),
            compute_type=device.compute_type, cpu_threads=config.cpu_threads,
        )
        translators = [load_translator(name) for name in config.translators]
        router = TranslationRouter(translators, speech_to_english=asr.multilingual)
        return cls(
            config=config,
            asr=asr,
            vad=SileroVadModel(),
            translators=translators,
            router=router,
            asr_worker=ModelWorker("asr", config.max_pending_requests),
            mt_worker=ModelWorker("mt", config.max_pending_requests),
            device=f"{device}/{device.compute_type}",
        )

    def describe(self) -> dict[str, str]:
        """Model names for the ``ready`` message and ``/readyz``."""
        return {
            "asr": f"whisper-{self.asr.name} (CTranslate2, {self.device})",
            "vad": "silero-vad",
            "mt": ", ".join(t.name for t in self.translators) + (", whisper-translate" if self.asr.multilingual else ""),
        }

    def close(self) -> None:
        self.asr_worker.close()
        self.mt_worker.close()
