"""Incremental audio decoding to 16 kHz mono float32.

Raw PCM (``pcm_s16le``, ``pcm_f32le``) is decoded with numpy (explicit little-endian dtypes) and
resampled with soxr's streaming resampler. Browser/mobile containers (``webm_opus``, ``ogg_opus``) are
demuxed and decoded by PyAV in a helper thread that reads from a blocking in-memory pipe, so that bytes
can be fed as they arrive.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import soxr

from .errors import AudioFormatError, BadAudioError

TARGET_RATE = 16_000
PCM_ENCODINGS = {"pcm_s16le": np.dtype("<i2"), "pcm_f32le": np.dtype("<f4")}
CONTAINER_ENCODINGS = {"webm_opus": "webm", "ogg_opus": "ogg"}
ENCODINGS = tuple(PCM_ENCODINGS) + tuple(CONTAINER_ENCODINGS)
MIN_RATE, MAX_RATE = 8_000, 48_000
# Float PCM is nominally in [-1, 1]; far beyond that the bytes are almost surely another encoding.
_F32_LIMIT = 4.0
_CONTAINER_MAGIC = {b"\x1a\x45\xdf\xa3": "webm_opus", b"OggS": "ogg_opus"}


@dataclass(frozen=True)
class AudioFormat:
    """What the client declared it sends."""

    encoding: str = "pcm_s16le"
    sample_rate: int = TARGET_RATE
    channels: int = 1

    def validate(self) -> None:
        """Raise AudioFormatError naming what is accepted when the format is not supported."""
        if self.encoding not in ENCODINGS:
            raise AudioFormatError(
                f"unsupported encoding {self.encoding!r}; accepted: {', '.join(ENCODINGS)}"
            )
        if self.encoding in PCM_ENCODINGS:
            if not MIN_RATE <= self.sample_rate <= MAX_RATE:
                raise AudioFormatError(
                    f"unsupported sample_rate {self.sample_rate}; accepted: {MIN_RATE} to {MAX_RATE} Hz"
                )
            if self.channels not in (1, 2):
                raise AudioFormatError(f"unsupported channels {self.channels}; accepted: 1 or 2")


class AudioDecoder(Protocol):
    """Turns arbitrary byte chunks into 16 kHz mono float32 samples."""

    def feed(self, data: bytes) -> np.ndarray: ...

    def close(self) -> np.ndarray: ...


class PcmDecoder:
    """Raw interleaved PCM → 16 kHz mono float32, for chunks of any byte length."""

    def __init__(self, fmt: AudioFormat) -> None:
        fmt.validate()
        self._dtype = PCM_ENCODINGS[fmt.encoding]
        self._channels = fmt.channels
        self._frame_bytes = self._dtype.itemsize * fmt.channels
        self._pending = b""
        self._seen_any = False
        self._encoding = fmt.encoding
        self._resampler = (
            None
            if fmt.sample_rate == TARGET_RATE
            else soxr.ResampleStream(fmt.sample_rate, TARGET_RATE, 1, dtype="float32", quality="HQ")
        )

    def feed(self, data: bytes) -> np.ndarray:
        """Decode whole frames from ``data`` (plus bytes left over from the previous call)."""
        if not self._seen_any and data:
            self._check_not_container(self._pending + data)
        buf = self._pending + data
        usable = len(buf) - len(buf) % self._frame_bytes
        self._pending = buf[usable:]
        if usable:
            self._seen_any = True
        samples = self._to_float(np.frombuffer(buf[:usable], dtype=self._dtype))
        return self._resample(samples, last=False)

    def close(self) -> np.ndarray:
        """Flush the resampler; a trailing partial frame is dropped."""
        return self._resample(np.zeros(0, np.float32), last=True)

    def _check_not_container(self, head: bytes) -> None:
        for magic, encoding in _CONTAINER_MAGIC.items():
            if head.startswith(magic):
                raise BadAudioError(
                    f"the audio looks like {encoding} but {self._encoding} was declared; "
                    f"declare encoding {encoding!r}"
                )

    def _to_float(self, raw: np.ndarray) -> np.ndarray:
        if self._dtype.kind == "i":
            samples = raw.astype(np.float32) / 32768.0
        else:
            samples = raw.astype(np.float32)
            if not np.isfinite(samples).all():
                raise BadAudioError("pcm_f32le audio contains NaN or infinite samples")
            if samples.size and float(np.abs(samples).max()) > _F32_LIMIT:
                raise BadAudioError(
                    "pcm_f32le samples far outside [-1, 1]; is the audio really 32-bit float "
                    "little-endian? For 16-bit integers declare 'pcm_s16le'"
                )
        if self._channels > 1:
            samples = samples.reshape(-1, self._channels).mean(axis=1)
        return samples

    def _resample(self, samples: np.ndarray, last: bool) -> np.ndarray:
        if self._resampler is None:
            return samples
        return self._resampler.resample_chunk(samples, last=last).astype(np.float32, copy=False)


class _BlockingPipe:
    """A file-like object whose ``read`` blocks until bytes arrive or the writer closes it."""

    def __init__(self, max_bytes: int) -> None:
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._max_bytes = max_bytes
        self._closed = False
        self._cond = threading.Condition()

    def write(self, data: bytes) -> None:
        with self._cond:
            if self._size + len(data) > self._max_bytes:
                raise BadAudioError(
                    f"the container decoder has {self._size} undecoded bytes buffered; "
                    "the stream does not decode as the declared encoding"
                )
            self._chunks.append(data)
            self._size += len(data)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def read(self, n: int = -1) -> bytes:
        with self._cond:
            while not self._chunks and not self._closed:
                self._cond.wait()
            if not self._chunks:
                return b""
            data = self._chunks.popleft()
            if 0 < n < len(data):
                self._chunks.appendleft(data[n:])
                data = data[:n]
            self._size -= len(data)
            return data


class ContainerDecoder:
    """WebM/Ogg Opus → 16 kHz mono float32, decoded incrementally by PyAV in a helper thread."""

    def __init__(self, fmt: AudioFormat, max_buffered_bytes: int = 8 * 1024 * 1024) -> None:
        fmt.validate()
        self._container_format = CONTAINER_ENCODINGS[fmt.encoding]
        self._encoding = fmt.encoding
        self._pipe = _BlockingPipe(max_buffered_bytes)
        self._out: deque[np.ndarray] = deque()
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._decoded_any = False
        self._thread = threading.Thread(target=self._run, name=f"decode-{fmt.encoding}", daemon=True)
        self._thread.start()

    def feed(self, data: bytes) -> np.ndarray:
        """Queue bytes for the decoder; return whatever samples are decoded so far."""
        self._raise_if_failed()
        if data:
            self._pipe.write(data)
        return self._drain()

    def close(self) -> np.ndarray:
        """Signal end of stream, wait for the decoder to finish and return the remaining samples."""
        self._pipe.close()
        self._thread.join()
        self._raise_if_failed()
        if not self._decoded_any:
            raise BadAudioError(f"the stream contained no decodable {self._encoding} audio")
        return self._drain()

    def abort(self) -> None:
        """Stop the helper thread without waiting for the remaining audio."""
        self._pipe.close()

    def _drain(self) -> np.ndarray:
        with self._lock:
            parts = list(self._out)
            self._out.clear()
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise BadAudioError(
                f"could not decode {self._encoding}: {self._error}"
            ) from self._error

    def _run(self) -> None:
        import av  # imported here: PyAV is heavy and only needed for container input

        try:
            with av.open(self._pipe, mode="r", format=self._container_format) as container:
                if not container.streams.audio:
                    raise ValueError("no audio stream in the container")
                resampler = av.AudioResampler(format="flt", layout="mono", rate=TARGET_RATE)
                for frame in container.decode(audio=0):
                    frame.pts = None
                    self._push(resampler.resample(frame))
                self._push(resampler.resample(None))
        except BaseException as exc:  # reported to the session on its next feed/close
            self._error = exc
            self._pipe.close()

    def _push(self, frames: list) -> None:
        arrays = [f.to_ndarray().reshape(-1).astype(np.float32, copy=False) for f in frames]
        arrays = [a for a in arrays if a.size]
        if arrays:
            self._decoded_any = True
            with self._lock:
                self._out.extend(arrays)


def make_decoder(fmt: AudioFormat) -> AudioDecoder:
    """The decoder for a declared format (raises AudioFormatError when unsupported)."""
    fmt.validate()
    if fmt.encoding in PCM_ENCODINGS:
        return PcmDecoder(fmt)
    return ContainerDecoder(fmt)
