"""Streaming vs offline accuracy on more than one recording: en-dev-long plus long streams built from
the other English clips of the shared recordings (seeded, so every run builds the same ones).

One file of ~430 words moves by several errors with tiny input changes; pooling ~1000 words over four
streams is what tells a real accuracy change from noise. ``shifts`` repeats every stream behind a few
tenths of a second of extra leading silence: the same speech then meets the VAD's 32 ms windows, the
cuts and Whisper's 10 ms frames at other offsets, which shows how much of a figure is one draw."""

from __future__ import annotations

import asyncio
import csv
import json
import random
from pathlib import Path
from typing import Any

import numpy as np

from .causal import causal_offline_text
from .offline import load_audio, load_offline_model, transcribe_text
from .wer import word_errors

_GAP_S = (0.6, 1.4)  # silence between clips, as in en-dev-long
_CONTINUOUS_GAP_S = (0.0, 0.1)  # too short for the VAD to end an utterance: only the length limit cuts


def _speech_only(audio: np.ndarray) -> np.ndarray:
    """The clip from 50 ms before its first speech to 50 ms after its last (Silero VAD)."""
    from faster_whisper.vad import get_speech_timestamps

    spans = get_speech_timestamps(audio)
    return audio[max(0, spans[0]["start"] - 800) : spans[-1]["end"] + 800] if spans else audio


def build_streams(speech_dir: Path, count: int = 3, seed: int = 11,
                  continuous: bool = False) -> list[tuple[str, np.ndarray, str]]:
    """(name, 16 kHz audio, reference) for en-dev-long and ``count`` streams of the clips it does not use;
    ``continuous``: those clips cut to their speech and joined with pauses under 0.1 s, for long speech."""
    dev_meta = json.loads((speech_dir / "en-dev-long.json").read_text())
    streams = [("en-dev-long", load_audio(speech_dir / "en-dev-long.flac"),
                " ".join(u["text"] for u in dev_meta["utterances"]))]
    used = {u["id"] for u in dev_meta["utterances"]}
    with (speech_dir / "manifest.tsv").open(newline="", encoding="utf-8") as fh:
        rows = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
        clips = [r for r in rows if r["lang"] == "en" and r["id"] not in used]
    rng = random.Random(seed)
    rng.shuffle(clips)
    gap_s, kind = (_CONTINUOUS_GAP_S, "joined") if continuous else (_GAP_S, "mix")
    for k in range(count):
        pieces, texts = [np.zeros(8000, np.float32)], []
        for clip in clips[k::count]:
            audio = load_audio(speech_dir / clip["path"])
            pieces.append(_speech_only(audio) if continuous else audio)
            pieces.append(np.zeros(int(rng.uniform(*gap_s) * 16000), np.float32))
            texts.append(clip["text"])
        streams.append((f"{kind}-{k}", np.concatenate(pieces), " ".join(texts)))
    return streams


def run(speech_dir: Path, model: str, shifts: tuple[float, ...] = (0.0,), continuous: bool = False,
        engine: str = "auto", causal: bool = False) -> dict[str, Any]:
    """Errors of streaming finals (fed unpaced in 100 ms chunks, ASR ``engine``) and of offline
    ``transcribe``, per stream and per shift (seconds of silence put in front of the stream);
    ``causal`` adds offline decoding that commits where the stream's finals end (``bench.causal``)."""
    from pipeline import EngineConfig, Engines

    from .pipeline_bench import stream_finals

    streams = build_streams(speech_dir, continuous=continuous)
    engines = Engines.load(EngineConfig(asr_model=model, asr_engine=engine))
    offline_model = load_offline_model(model)
    kinds = ("streaming", "offline", "causal_offline") if causal else ("streaming", "offline")
    rows = []
    try:
        for shift in shifts:
            lead_in = np.zeros(round(shift * 16000), np.float32)
            for name, speech, reference in streams:
                audio = np.concatenate([lead_in, speech])
                finals = asyncio.run(stream_finals(engines, audio))
                texts = {"streaming": " ".join(e.text for e in finals),
                         "offline": transcribe_text(offline_model, audio)}
                if causal:
                    texts["causal_offline"] = causal_offline_text(offline_model, audio, (e.end for e in finals))
                row: dict[str, Any] = {"stream": name, "shift_s": shift}
                for kind in kinds:
                    row[f"{kind}_errors"], row["words"] = word_errors(reference, texts[kind])
                rows.append(row)
                print(f"{name:12s} shift {shift:4.2f} s {row['words']:5d} words  "
                      + "  ".join(f"{kind} {row[f'{kind}_errors']:3d}" for kind in kinds), flush=True)
    finally:
        engines.close()
    words = sum(r["words"] for r in rows)
    pooled = {kind: sum(r[f"{kind}_errors"] for r in rows) / words for kind in kinds}
    print(f"pooled WER over {words} words: " + ", ".join(f"{kind} {value:.4f}" for kind, value in pooled.items()))
    return {"model": model, "engine": engines.asr.describe(), "shifts_s": list(shifts), "continuous": continuous,
            "streams": rows, "pooled_wer": pooled}
