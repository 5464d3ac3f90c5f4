"""Audio input: PCM of any chunking, rates, channels, floats, and incremental WebM/Ogg Opus."""

from __future__ import annotations

import random

import numpy as np
import pytest

from gateway.client import opus_frames
from pipeline import AudioFormat, AudioFormatError, BadAudioError, make_decoder
from tests.conftest import to_s16


def tone(freq: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def decode_all(fmt: AudioFormat, data: bytes, sizes: list[int] | None = None) -> np.ndarray:
    decoder = make_decoder(fmt)
    out, offset = [], 0
    for size in sizes or [len(data)]:
        out.append(decoder.feed(data[offset : offset + size]))
        offset += size
    out.append(decoder.feed(data[offset:]))
    out.append(decoder.close())
    return np.concatenate(out)


def random_sizes(total: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    sizes, used = [], 0
    while used < total:
        size = rng.choice([1, 2, 3, 7, 333, 4095, rng.randint(1, 65536)])
        sizes.append(size)
        used += size
    return sizes


def test_s16_is_little_endian_whatever_the_host():
    data = np.array([1, -2, 32767], dtype="<i2").tobytes()
    out = decode_all(AudioFormat("pcm_s16le", 16000, 1), data)
    np.testing.assert_allclose(out, np.array([1, -2, 32767]) / 32768.0)


@pytest.mark.parametrize("encoding,dtype", [("pcm_s16le", "<i2"), ("pcm_f32le", "<f4")])
def test_any_chunking_gives_the_same_samples(encoding, dtype):
    samples = tone(440, 44100, 2.0)
    raw = (samples * 32767).astype(dtype) if dtype == "<i2" else samples.astype(dtype)
    fmt = AudioFormat(encoding, 44100, 1)
    whole = decode_all(fmt, raw.tobytes())
    chunked = decode_all(fmt, raw.tobytes(), random_sizes(len(raw.tobytes()), seed=3))
    np.testing.assert_allclose(chunked, whole, atol=1e-6)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resampling_keeps_pitch_and_duration(rate):
    out = decode_all(AudioFormat("pcm_f32le", rate, 1), tone(1000, rate).astype("<f4").tobytes())
    assert abs(out.size - 16000) <= 32
    spectrum = np.abs(np.fft.rfft(out[2000:14000]))
    peak_hz = np.argmax(spectrum) * 16000 / 12000
    assert abs(peak_hz - 1000) < 5


def test_stereo_is_downmixed():
    left, right = tone(300, 16000), np.zeros(16000, np.float32)
    interleaved = np.stack([left, right], axis=1).reshape(-1).astype("<f4")
    out = decode_all(AudioFormat("pcm_f32le", 16000, 2), interleaved.tobytes())
    np.testing.assert_allclose(out, left / 2, atol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_floats_are_rejected(bad):
    samples = tone(300, 16000)
    samples[100] = bad
    with pytest.raises(BadAudioError, match="NaN or infinite"):
        decode_all(AudioFormat("pcm_f32le", 16000, 1), samples.astype("<f4").tobytes())


def test_s16_declared_as_f32_is_rejected():
    raw = (tone(300, 16000) * 32767).astype("<i2").tobytes()
    with pytest.raises(BadAudioError, match="pcm_s16le"):
        decode_all(AudioFormat("pcm_f32le", 16000, 1), raw)


@pytest.mark.parametrize("fmt,match", [
    (AudioFormat("mp3", 16000, 1), "unsupported encoding"),
    (AudioFormat("pcm_s16le", 4000, 1), "sample_rate"),
    (AudioFormat("pcm_s16le", 96000, 1), "sample_rate"),
    (AudioFormat("pcm_s16le", 16000, 6), "channels"),
])
def test_unsupported_formats_name_what_is_accepted(fmt, match):
    with pytest.raises(AudioFormatError, match=match):
        make_decoder(fmt)


def encode_opus(samples: np.ndarray, container: str) -> bytes:
    """16 kHz float samples → Opus in ``container``, by the reference client's encoder."""
    return b"".join(opus_frames(to_s16(samples), container))


@pytest.mark.parametrize("encoding,container", [("webm_opus", "webm"), ("ogg_opus", "ogg")])
def test_container_opus_decodes_incrementally(encoding, container):
    samples = tone(500, 16000, 3.0)
    data = encode_opus(samples, container)
    decoder = make_decoder(AudioFormat(encoding, 48000, 1))
    early = [decoder.feed(data[i : i + 777]) for i in range(0, len(data), 777)]
    out = np.concatenate([*early, decoder.close()])
    assert abs(out.size - samples.size) < 0.1 * samples.size
    spectrum = np.abs(np.fft.rfft(out[4000:40000]))
    assert abs(np.argmax(spectrum) * 16000 / 36000 - 500) < 10


def test_garbage_declared_as_webm_is_a_clear_error():
    decoder = make_decoder(AudioFormat("webm_opus", 48000, 1))
    with pytest.raises(BadAudioError, match="webm_opus"):
        decoder.feed(b"this is not a webm file" * 100)
        decoder.close()


def test_webm_declared_as_pcm_is_a_clear_error():
    data = encode_opus(tone(500, 16000), "webm")
    with pytest.raises(BadAudioError, match="declare encoding 'webm_opus'"):
        decode_all(AudioFormat("pcm_s16le", 16000, 1), data)
