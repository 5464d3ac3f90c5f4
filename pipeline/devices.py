"""Choose where models run: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``, and the compute type that suits it."""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import PipelineError

# CTranslate2 4.x wheels are built against CUDA 12 and cuDNN 9.
_CUDA_LIBRARIES = {
    "libcublas.so.12": "pip install nvidia-cublas-cu12 (or the CUDA 12 runtime)",
    "libcudnn.so.9": "pip install nvidia-cudnn-cu12 (cuDNN 9 for CUDA 12)",
}


class DeviceError(PipelineError):
    """The requested device cannot be used; the message says what is missing and how to get it."""

    code = "device_unavailable"


@dataclass(frozen=True)
class Device:
    kind: str  # "cpu" or "cuda"
    index: int = 0
    compute_type: str = "int8"

    def __str__(self) -> str:
        return self.kind if self.kind == "cpu" else f"cuda:{self.index}"


def _missing_cuda_libraries() -> list[str]:
    missing = []
    for name, how in _CUDA_LIBRARIES.items():
        try:
            ctypes.CDLL(name)
        except OSError:
            missing.append(f"{name} ({how})")
    return missing


def cuda_device_count(engine: str = "ctranslate2") -> int:
    """GPUs the engine can run on (0 without a driver, without torch for ``transformers``, and always for
    ``hybrid``, a CPU engine)."""
    if engine == "hybrid":
        return 0
    if engine == "transformers":
        try:
            import torch
        except ImportError:
            return 0
        return torch.cuda.device_count()
    import ctranslate2

    return ctranslate2.get_cuda_device_count()


ENGINES = ("auto", "ctranslate2", "transformers", "hybrid")

# Up to this many usable CPUs, Whisper's decoder runs on one thread. A decoder step (one token for each
# hypothesis) is a few milliseconds of work, and on a 2-core VM a second thread added more in
# synchronisation than it took off: a beam-5 step of base took 9.4 ms on one thread and 18.2 ms on two,
# tiny- to medium-sized decoders alike (docs/decisions.md, stage 4). Larger CPUs are unmeasured.
SINGLE_THREAD_DECODER_MAX_CPUS = 2


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity, which containers narrow, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_decoder_threads(requested: int, cpu_threads: int, cpus: int | None = None) -> int:
    """Threads for CTranslate2's Whisper decoder on the CPU: ``requested`` when positive; otherwise one on a
    CPU with at most ``SINGLE_THREAD_DECODER_MAX_CPUS`` usable CPUs (``cpus``, default: this process's),
    else ``cpu_threads`` (0: the runtime's default, all cores)."""
    if requested > 0:
        return requested
    return 1 if (cpus or usable_cpus()) <= SINGLE_THREAD_DECODER_MAX_CPUS else cpu_threads


@functools.cache
def _cpuinfo_words() -> frozenset[str]:
    """The words of ``/proc/cpuinfo`` (vendor, flags), as Linux reports them; empty elsewhere."""
    try:
        return frozenset(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return frozenset()


def ctranslate2_uses_mkl() -> bool:
    """Whether CTranslate2 multiplies with Intel MKL on this CPU: as CTranslate2 itself decides, on Intel
    CPUs unless ``CT2_USE_MKL`` says otherwise (elsewhere it uses oneDNN)."""
    override = os.environ.get("CT2_USE_MKL", "").strip().lower()
    if override:
        return override in ("1", "true", "on", "yes")
    return "GenuineIntel" in _cpuinfo_words()


def resolve_solo_beams_on_all_threads(requested_decoder_threads: int, decoder_threads: int, cpu_threads: int,
                                      cpus: int | None = None) -> bool:
    """Whether a beam search (a final) that starts while the ASR model runs nothing else, with at most one
    session open, may decode on every thread: only where the decoder threads were left to
    ``resolve_decoder_threads`` and put on fewer threads than the encoder, and where CTranslate2 does not
    use MKL. On a 2-core AMD EPYC (oneDNN) one final took 0.64 s on two threads and 0.80 s on one, with
    bit-identical results; with MKL a second thread made each step twice as slow (docs/decisions.md,
    stage 4). Other CPUs (ARM: Ruy) are unmeasured."""
    all_threads = cpu_threads or cpus or usable_cpus()
    fewer = 0 < decoder_threads < all_threads  # 0: the runtime's default, all of them
    return requested_decoder_threads <= 0 and fewer and not ctranslate2_uses_mkl()


# Where the decoder runs on one thread, a second ASR lane decodes on the core it leaves idle: two sessions'
# requests (one's final, the other's partial) run side by side. Measured on 2 cores; more are unmeasured.
CPU_ASR_LANES = 2


def resolve_asr_lanes(requested: int, engine: str, device: Device, decoder_threads: int,
                      cpus: int | None = None) -> int:
    """ASR requests the model runs at once: ``requested`` when positive; otherwise ``CPU_ASR_LANES`` for a
    CTranslate2 decoder on one CPU thread (``resolve_decoder_threads``) with another CPU to use, else one.
    GPUs batch instead. Lanes need CTranslate2's parallel model replicas: the transformers engine has one."""
    if engine == "transformers":
        if requested > 1:
            raise DeviceError("--asr-lanes above 1 needs the ctranslate2 or hybrid engine; "
                              "the transformers engine runs one request at a time (use --asr-lanes 1 or 0)")
        return 1
    if requested > 0:
        return requested
    spare_cpu = (cpus or usable_cpus()) > decoder_threads
    return CPU_ASR_LANES if device.kind == "cpu" and decoder_threads == 1 and spare_cpu else 1


def cpu_has_amx_bf16() -> bool:
    """Whether the CPU multiplies bfloat16 matrices in hardware (Intel AMX, Sapphire Rapids and later),
    as Linux reports it."""
    return "amx_bf16" in _cpuinfo_words()


def hybrid_engine_pays() -> bool:
    """The ``hybrid`` engine's torch encoder is installed and has AMX to run on (without AMX it runs in
    float32, level with CTranslate2's int8 on an AVX2 CPU: measured in docs/decisions.md)."""
    installed = all(importlib.util.find_spec(name) is not None for name in ("torch", "transformers"))
    return installed and cpu_has_amx_bf16()


def resolve_engine(engine: str, device: str) -> str:
    """``auto``: on the CPU, ``hybrid`` (CTranslate2 behind a torch encoder in bfloat16) where the CPU has
    AMX and torch is installed, else CTranslate2; on a GPU, CTranslate2 wherever it can run it, and
    transformers/torch when CTranslate2 cannot load its CUDA 12 libraries but torch can use the GPU.
    (torch is not imported otherwise: on a CPU machine it would only cost memory.)"""
    if engine not in ENGINES:
        raise DeviceError(f"unknown ASR engine {engine!r}; use " + ", ".join(ENGINES))
    if engine == "hybrid" and device.startswith("cuda"):
        raise DeviceError("the hybrid engine (a torch encoder in front of CTranslate2's decoder) runs on the CPU; "
                          "use --device cpu, or --asr-engine ctranslate2 or transformers on a GPU")
    if engine != "auto":
        return engine
    if device.startswith("cpu") or cuda_device_count() == 0:
        return "hybrid" if hybrid_engine_pays() else "ctranslate2"
    if _missing_cuda_libraries() and cuda_device_count("transformers") > 0:
        return "transformers"
    return "ctranslate2"


def resolve_device(device: str = "auto", compute_type: str = "auto", engine: str = "ctranslate2") -> Device:
    """``auto`` picks the first CUDA GPU the engine can use, else the CPU; ``auto`` compute type is int8
    (CTranslate2) or float32 (transformers) on CPU and float16 on GPU. A CUDA request that cannot work
    raises DeviceError saying why."""
    kind, _, index = device.partition(":")
    if kind not in ("auto", "cpu", "cuda"):
        raise DeviceError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    gpus = cuda_device_count(engine) if kind != "cpu" else 0
    missing = _missing_cuda_libraries() if engine == "ctranslate2" and kind != "cpu" else []
    if kind == "auto":
        kind = "cuda" if gpus and not missing else "cpu"
    elif kind == "cuda":
        if gpus == 0:
            raise DeviceError(f"CUDA was requested but {engine} sees no GPU (no NVIDIA driver or device "
                              "visible, or a CPU-only torch); use --device cpu, or run on a machine with an "
                              "NVIDIA GPU and driver")
        if missing:
            raise DeviceError("CUDA was requested but these libraries cannot be loaded: " + "; ".join(missing)
                              + " (or use --asr-engine transformers, which needs only torch)")
        if int(index or 0) >= gpus:
            raise DeviceError(f"{device} was requested but only {gpus} GPU(s) are visible")
    if compute_type == "auto":  # the hybrid engine's compute type is its CTranslate2 decoder's
        compute_type = "float16" if kind == "cuda" else ("float32" if engine == "transformers" else "int8")
    return Device(kind, int(index or 0) if kind == "cuda" else 0, compute_type)
