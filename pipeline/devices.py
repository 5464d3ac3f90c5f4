"""Choose where models run: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``, and the compute type that suits it."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

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


def cuda_device_count() -> int:
    """GPUs CTranslate2 can see (0 without a driver)."""
    import ctranslate2

    return ctranslate2.get_cuda_device_count()


def resolve_device(device: str = "auto", compute_type: str = "auto") -> Device:
    """``auto`` picks the first CUDA GPU CTranslate2 can use, else the CPU; ``auto`` compute type is
    int8 on CPU and float16 on GPU. A CUDA request that cannot work raises DeviceError saying why."""
    kind, _, index = device.partition(":")
    if kind not in ("auto", "cpu", "cuda"):
        raise DeviceError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    gpus = cuda_device_count() if kind != "cpu" else 0
    if kind == "auto":
        kind = "cuda" if gpus and not _missing_cuda_libraries() else "cpu"
    elif kind == "cuda":
        if gpus == 0:
            raise DeviceError("CUDA was requested but CTranslate2 sees no GPU (no NVIDIA driver or device "
                              "visible); use --device cpu, or run on a machine with an NVIDIA GPU and driver")
        missing = _missing_cuda_libraries()
        if missing:
            raise DeviceError("CUDA was requested but these libraries cannot be loaded: " + "; ".join(missing))
        if int(index or 0) >= gpus:
            raise DeviceError(f"{device} was requested but only {gpus} GPU(s) are visible")
    if compute_type == "auto":
        compute_type = "int8" if kind == "cpu" else "float16"
    return Device(kind, int(index or 0) if kind == "cuda" else 0, compute_type)
