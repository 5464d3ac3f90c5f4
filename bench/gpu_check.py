"""GPU check: the torch Whisper engine on random weights, CPU/GPU agreement, and streams per GPU.

Needs no network and no model files (random weights; Whisper's multilingual tokenizer from
``bench/assets``). One run fits in about 5 minutes of a lent GPU:

    python -m bench gpu                       # large-v3-turbo and base shapes, on cuda
    python -m bench gpu --smoke               # a tiny shape on the CPU, seconds (used by the tests)

On a bare GPU image that has torch, transformers and tokenizers but not this project's other
dependencies, ``bash bench/gpu_check_wheels.sh`` (here, with network) puts the two missing wheels
(soxr, faster-whisper) in ``.whl/`` and prints the one command to run there: ``python3 -m
bench.gpu_check``, which needs nothing else of the project's dependencies.

1. Agreement: a small random Whisper on the CPU (float32) and on the device (float32, then the serving
   dtype): encoder outputs and greedy tokens of the same input.
2. Capacity: N simulated real-time streams in-process (no sockets) through the real engine and the
   real batching ``ModelWorker``. Each stream sends a partial request every ``--interval`` seconds for
   the utterance so far (fitted window, greedy) and a final (full 30 s window, beam 5) when its
   5-second utterance ends, skipping a partial while its previous request is still running (as a
   session does). Latency = result time - time the request was due. With random weights every decode
   runs to its token limit, set to 3 tokens per audio second + 16 (real speech has 2-4).
   Reported per N: p50/p90 latency of partials and finals, batch sizes, GPU memory; the answer is the
   largest N whose p90 over all updates stays ≤ 1 s.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHAPES = {  # WhisperConfig fields of the real checkpoints (random weights here)
    "large-v3-turbo": dict(d_model=1280, encoder_layers=32, decoder_layers=4, encoder_attention_heads=20,
                           decoder_attention_heads=20, encoder_ffn_dim=5120, decoder_ffn_dim=5120,
                           num_mel_bins=128, vocab_size=51866),
    "base": dict(d_model=512, encoder_layers=6, decoder_layers=6, encoder_attention_heads=8,
                 decoder_attention_heads=8, encoder_ffn_dim=2048, decoder_ffn_dim=2048,
                 num_mel_bins=80, vocab_size=51865),
    "tiny-random": dict(d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                        decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128,
                        num_mel_bins=80, vocab_size=51865),
}
UTTERANCE_S = 5.0


TOKENIZER = Path(__file__).parent / "assets" / "whisper-multilingual-tokenizer.json"  # Whisper base's (MIT)


def _tokenizer_file() -> Path:
    return TOKENIZER


def _faster_whisper_without_runtime() -> None:
    """Make ``faster_whisper.feature_extractor`` and ``.tokenizer`` (numpy and tokenizers only)
    importable where faster-whisper's runtime dependencies (CTranslate2, PyAV) are not installed: its
    package ``__init__`` imports them, its two modules used here do not."""
    import importlib.util
    import sys
    import types

    try:
        import faster_whisper  # noqa: F401
    except ImportError:
        spec = importlib.util.find_spec("faster_whisper")
        if spec is None:
            raise
        package = types.ModuleType("faster_whisper")
        package.__path__ = list(spec.submodule_search_locations or [])
        sys.modules["faster_whisper"] = package


def random_whisper(shape: str, device: str, dtype: str, seed: int = 0):
    """A ``WhisperForConditionalGeneration`` with ``shape``'s sizes and random weights, made on ``device``."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(seed)
    config = WhisperConfig(**SHAPES[shape], max_source_positions=1500, max_target_positions=448,
                           pad_token_id=50257, bos_token_id=50257, eos_token_id=50257, decoder_start_token_id=50258)
    with torch.device(device):
        model = WhisperForConditionalGeneration(config)
    return model.to(getattr(torch, dtype)).eval()


def engine_for(model, device: str, compute_type: str):
    _faster_whisper_without_runtime()
    from pipeline.asr import WhisperEngine
    from pipeline.whisper_torch import TorchWhisperBackend

    backend = TorchWhisperBackend(model, _tokenizer_file(), device=device, compute_type=compute_type)
    return WhisperEngine(backend, _tokenizer_file(), name="random", max_tokens_per_second=3.0,
                         no_speech_threshold=2.0)  # never drop text: random weights have no notion of silence


def agreement(device: str, dtype: str) -> dict:
    """CPU float32 vs ``device`` (float32 and ``dtype``) on a small random model: same tokens?"""
    from pipeline.asr import DecodeOptions

    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(16000 * 4)).astype(np.float32)
    options = DecodeOptions(language="en", beam_size=1, full_window=True)
    reference_model = random_whisper("tiny-random", "cpu", "float32")
    reference = engine_for(reference_model, "cpu", "float32")
    ref_encoded = reference.backend.encode(np.zeros((1, 80, 3000), np.float32) + 0.1).float().cpu().numpy()
    ref_tokens = reference.decode(audio, options).text
    out = {}
    for compute in dict.fromkeys(["float32", dtype]):
        engine = engine_for(random_whisper("tiny-random", "cpu", "float32"), device, compute)
        encoded = engine.backend.encode(np.zeros((1, 80, 3000), np.float32) + 0.1).float().cpu().numpy()
        out[compute] = {
            "encoder_max_abs_diff": float(np.abs(encoded - ref_encoded).max()),
            "encoder_max_abs": float(np.abs(ref_encoded).max()),
            "same_greedy_text": engine.decode(audio, options).text == ref_tokens,
        }
    return out


@dataclass
class _Stream:
    offset: float
    busy: bool = False


async def simulate(engine, streams: int, seconds: float, interval: float, max_batch: int, wait_s: float) -> dict:
    """``streams`` real-time streams for ``seconds`` through a batching worker; latency statistics."""
    from pipeline.asr import DecodeOptions, DecodeRequest
    from pipeline.scheduler import ModelWorker, Priority

    worker = ModelWorker("asr", max_pending=4 * streams + 8, max_batch=max_batch, max_wait_s=wait_s)
    audio = (0.1 * np.random.default_rng(1).standard_normal(int(16000 * UTTERANCE_S))).astype(np.float32)
    latencies: dict[str, list[float]] = {"partial": [], "final": []}
    skipped = 0
    start = time.perf_counter()
    rng = random.Random(streams)
    state = [_Stream(offset=rng.uniform(0, UTTERANCE_S)) for _ in range(streams)]

    async def request(stream: _Stream, due: float, heard: float, final: bool) -> None:
        stream.busy = True
        options = DecodeOptions(language="en", beam_size=5 if final else 1, full_window=final)
        clip = audio[: max(1600, int(16000 * heard))]
        try:
            await worker.submit(engine.decode_batch, DecodeRequest(clip, options),
                                Priority.FINAL if final else Priority.PARTIAL)
            latencies["final" if final else "partial"].append(time.perf_counter() - start - due)
        finally:
            stream.busy = False

    tasks: set[asyncio.Task] = set()
    ticks = sorted((s.offset + k * interval, i) for i, s in enumerate(state) for k in range(int(seconds / interval)))
    for due, i in ticks:
        await asyncio.sleep(max(0.0, due - (time.perf_counter() - start)))
        stream = state[i]
        heard = (due - stream.offset) % UTTERANCE_S + interval
        final = heard >= UTTERANCE_S
        if stream.busy and not final:
            skipped += 1
            continue
        task = asyncio.create_task(request(stream, due, min(heard, UTTERANCE_S), final))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    worker.close()
    every = latencies["partial"] + latencies["final"]

    def pct(values: list[float], q: float) -> float:
        return float(np.percentile(values, q)) if values else float("nan")

    sizes = Counter(worker.batch_sizes)
    return {
        "streams": streams,
        "updates": len(every),
        "skipped_partials": skipped,
        "p50_s": pct(every, 50), "p90_s": pct(every, 90),
        "partial_p90_s": pct(latencies["partial"], 90), "final_p90_s": pct(latencies["final"], 90),
        "mean_batch": sum(k * v for k, v in sizes.items()) / max(1, sum(sizes.values())),
        "max_batch_seen": max(sizes) if sizes else 0,
        "busy_fraction": worker.busy_seconds / max(1e-9, time.perf_counter() - start),
    }


def capacity(shape: str, device: str, dtype: str, levels: list[int], seconds: float, interval: float,
             max_batch: int, wait_s: float, limit: float) -> dict:
    """Sweep the stream counts of ``levels`` until p90 latency passes ``limit``."""
    import torch

    from pipeline.asr import DecodeOptions

    model = random_whisper(shape, device, dtype)
    engine = engine_for(model, device, dtype)
    engine.decode(np.zeros(16000, np.float32), DecodeOptions(language="en"))  # warm-up
    rows = []
    for n in levels:
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        row = asyncio.run(simulate(engine, n, seconds, interval, max_batch, wait_s))
        if device.startswith("cuda"):
            row["gpu_memory_gb"] = torch.cuda.max_memory_allocated() / 1e9
        rows.append(row)
        print(f"  {shape} N={n}: p50 {row['p50_s']:.2f} s, p90 {row['p90_s']:.2f} s, mean batch {row['mean_batch']:.1f}",
              flush=True)
        if row["p90_s"] > limit:
            break
    ok = [r["streams"] for r in rows if r["p90_s"] <= limit]
    del engine, model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return {"shape": shape, "dtype": dtype, "rows": rows, "streams_within_limit": max(ok) if ok else 0}


def table(result: dict) -> str:
    lines = [f"**{result['shape']}** ({result['dtype']}): largest N with p90 ≤ limit: **{result['streams_within_limit']}**", "",
             "| N | updates | p50 (s) | p90 (s) | partial p90 | final p90 | skipped partials | mean batch | max batch | GPU busy | GPU mem (GB) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['streams']} | {r['updates']} | {r['p50_s']:.2f} | {r['p90_s']:.2f} | {r['partial_p90_s']:.2f} | "
                     f"{r['final_p90_s']:.2f} | {r['skipped_partials']} | {r['mean_batch']:.1f} | {r['max_batch_seen']} | "
                     f"{r['busy_fraction']:.0%} | {r.get('gpu_memory_gb', float('nan')):.1f} |")
    return "\n".join(lines)


def run(args) -> dict:
    import torch

    smoke = args.smoke
    device = "cpu" if smoke else args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device visible to torch; use --smoke for the CPU check")
    dtype = "float32" if device == "cpu" else args.dtype
    report: dict = {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "cpu",
    }
    print(f"device: {report['device']}, torch {report['torch']}", flush=True)
    started = time.perf_counter()
    report["agreement"] = agreement(device, dtype)
    print("agreement (small random model, CPU float32 vs device):", json.dumps(report["agreement"]), flush=True)
    shapes = ["tiny-random"] if smoke else args.shapes
    levels = [1, 2] if smoke else args.levels
    seconds = 6.0 if smoke else args.seconds
    report["capacity"] = [
        capacity(shape, device, dtype, levels, seconds, args.interval, args.max_batch, args.batch_wait_ms / 1000, args.limit)
        for shape in shapes
    ]
    report["tables"] = [table(result) for result in report["capacity"]]
    report["seconds"] = time.perf_counter() - started
    print("\n\n".join(report["tables"]))
    print(f"\ntotal {report['seconds']:.0f} s")
    return report


def add_arguments(parser) -> None:
    parser.add_argument("--smoke", action="store_true", help="tiny random model on the CPU (seconds)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    parser.add_argument("--shapes", nargs="+", default=["large-v3-turbo", "base"], choices=list(SHAPES))
    parser.add_argument("--levels", type=lambda v: [int(x) for x in v.split(",")], default=[8, 16, 32, 48, 64, 96, 128])
    parser.add_argument("--seconds", type=float, default=12.0, help="simulated seconds per level")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between a stream's updates")
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--batch-wait-ms", type=float, default=5.0)
    parser.add_argument("--limit", type=float, default=1.0, help="p90 update latency bound (s)")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.gpu_check`` (needs only torch, transformers, tokenizers, numpy, soxr and
    faster-whisper's files; ``python -m bench gpu`` is the same with the whole project installed)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    report = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu-check.json").write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
