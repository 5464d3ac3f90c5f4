"""``python -m bench``: latency, accuracy and concurrency of the gateway.

  python -m bench run --spawn --model base --sessions 2 --targets pt
  python -m bench sweep --spawn --model base --targets pt        # N = 1, 2, 4 … until p90 > limit
  python -m bench offline --model base                             # whole-file reference cost and WER
  python -m bench pipeline --model base                            # in-process: RTFs and final delay
  python -m bench pipeline --model base --source-language auto     # … with language detection per final
  python -m bench baseline --model base                            # the plain server to beat: silence, then decode
  python -m bench accuracy --model base                            # streaming vs offline WER, 4 streams
  python -m bench accuracy --model base --shifts 0,0.1,0.3,0.75    # … each at 4 offsets (how much is noise)
  python -m bench accuracy --model base --continuous               # … clips joined into long speech
  python -m bench accuracy --model base --causal                   # … and offline without look-ahead
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

from gateway.client import BYTES_PER_SECOND, CONTAINERS, StreamOptions, client_ssl_context, decode_file

from .loadgen import LoadResult, recording_span, run_load
from .server import ProcessSampler, spawn_gateway

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "speech" / "en-dev-long.flac"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), cpu)
    import os

    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}


def load_pcm_recording(path: Path, seconds: float | None) -> tuple[bytes, list[dict[str, Any]]]:
    """PCM of the recording as the reference client decodes it, cut to about ``seconds`` between
    utterances, and the utterances it holds (from the JSON beside it)."""
    audio = decode_file(path)
    end, utterances = recording_span(path, seconds, len(audio) / BYTES_PER_SECOND)
    return audio[: int(end * BYTES_PER_SECOND) // 2 * 2], utterances


def progress(total_seconds: float, label: str):
    from tqdm import tqdm

    return tqdm(total=round(total_seconds), desc=label, unit="s audio", leave=False, disable=None)


async def measure(url: str, ssl_ctx, audio: bytes, utterances, n: int, targets, sampler, label: str,
                  stagger_s: float = 3.0, encoding: str = "pcm_s16le") -> dict:
    options = StreamOptions(targets=tuple(targets), source_language="en", encoding=encoding)
    seconds = len(audio) / BYTES_PER_SECOND
    bar = progress(seconds + stagger_s, label)
    ticker = asyncio.create_task(_tick(bar, seconds + stagger_s))
    since = time.monotonic()
    try:
        result: LoadResult = await run_load(url, audio, utterances, n, options, ssl_ctx, stagger_s)
    finally:
        ticker.cancel()
        bar.close()
    summary = result.summary()
    summary["n"] = n
    summary["audio_seconds"] = seconds
    if sampler is not None:
        summary["server"] = sampler.summary(since)
        cpu = summary["server"]["cpu_cores"] * result.wall_seconds
        summary["server"]["cpu_seconds_per_audio_second"] = cpu / (seconds * max(1, n - summary["refused"]))
    return summary


async def _tick(bar, seconds: float) -> None:
    for _ in range(int(seconds) + 5):
        await asyncio.sleep(1)
        bar.update(1)


def offline_reference(path: Path, model: str, seconds: float | None, targets: list[str]) -> dict[str, Any]:
    """Whole-file transcription (and translation of its sentences) in this process: CPU cost and WER."""
    import numpy as np

    from .offline import offline_transcribe
    from .wer import wer

    audio_bytes, utterances = load_pcm_recording(path, seconds)
    audio = np.frombuffer(audio_bytes, "<i2").astype(np.float32) / 32768
    cpu0 = time.process_time()
    result = offline_transcribe(model, audio)
    cpu = time.process_time() - cpu0
    out = {"model": model, "audio_seconds": result.audio_seconds, "wall_seconds": result.seconds,
           "rtf": result.rtf, "cpu_seconds_per_audio_second": cpu / result.audio_seconds,
           "wer": wer(" ".join(u["text"] for u in utterances), result.text) if utterances else math.nan}
    if "pt" in targets:
        from pipeline.translation.bergamot import BergamotTranslator

        translator = BergamotTranslator()
        t0 = time.perf_counter()
        translator.translate([u["text"] for u in utterances], "en", "pt")
        out["mt_seconds"] = time.perf_counter() - t0
    return out


def print_table(rows: list[dict[str, Any]]) -> str:
    header = (f"{'N':>3} {'refused':>7} {'final p50':>9} {'p90':>6} {'p99':>6} {'max':>6} {'1st partial p50':>15} "
              f"{'mt p50':>7} {'WER':>6} {'cpu':>5} {'rss MB':>7}")
    lines = [header]
    for r in rows:
        lat = r["latency"]
        mt = next((v for k, v in lat.items() if k.startswith("translation_")), {"p50": math.nan})
        server = r.get("server", {})
        lines.append(
            f"{r['n']:>3} {r['refused']:>7} {lat['final']['p50']:>9.2f} {lat['final']['p90']:>6.2f} "
            f"{lat['final']['p99']:>6.2f} {lat['final']['max']:>6.2f} {lat['first_partial']['p50']:>15.2f} "
            f"{mt['p50']:>7.3f} {r['wer']:>6.3f} {server.get('cpu_cores', math.nan):>5.2f} "
            f"{server.get('rss_mb_max', math.nan):>7.0f}")
    table = "\n".join(lines)
    print(table, flush=True)
    return table


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r["n"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key, style in (("p50", "o-"), ("p90", "s-"), ("p99", "^--")):
        ax.plot(ns, [r["latency"]["final"][key] for r in rows], style, label=f"final latency {key}")
    ax.plot(ns, [r["latency"]["first_partial"]["p50"] for r in rows], "x:", label="first partial p50")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set_xlabel("concurrent real-time sessions")
    ax.set_ylabel("seconds")
    ax.grid(alpha=0.3)
    wer_ax = ax.twinx()
    wer_ax.plot(ns, [100 * r["wer"] for r in rows], "k*-.", label="WER %")
    wer_ax.set_ylabel("WER %")
    wer_ax.set_ylim(bottom=0)
    lines = ax.get_legend_handles_labels()
    wer_lines = wer_ax.get_legend_handles_labels()
    ax.legend(lines[0] + wer_lines[0], lines[1] + wer_lines[1], loc="upper left", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


@contextlib.asynccontextmanager
async def target(args):
    """The gateway under test: spawned (with a /proc sampler) or a running URL."""
    if args.spawn:
        flags = ["--model", args.model, "--max-sessions", str(args.max_sessions), *args.gateway_flag]
        with spawn_gateway(flags) as gw:
            sampler = ProcessSampler(gw.pid).start()
            try:
                yield gw.url, gw.ssl_context(), sampler
            finally:
                sampler.stop()
    else:
        yield args.url, client_ssl_context(args.cafile, args.insecure), None


async def command_run(args) -> dict[str, Any]:
    audio, utterances = load_pcm_recording(args.file, args.seconds)
    async with target(args) as (url, ctx, sampler):
        summary = await measure(url, ctx, audio, utterances, args.sessions, args.targets, sampler, f"N={args.sessions}",
                                args.stagger, args.encoding)
    print_table([summary])
    return {"machine": machine(), "model": args.model, "runs": [summary]}


async def command_sweep(args) -> dict[str, Any]:
    audio, utterances = load_pcm_recording(args.file, args.seconds)
    rows: list[dict[str, Any]] = []
    report: dict[str, Any] = {"machine": machine(), "model": args.model, "targets": args.targets,
                              "limit_p90_s": args.limit, "file": str(args.file), "runs": rows}
    try:
        async with target(args) as (url, ctx, sampler):
            n = 1
            while n <= args.max_n:
                rows.append(await measure(url, ctx, audio, utterances, n, args.targets, sampler, f"N={n}"))
                print_table(rows[-1:])
                if rows[-1]["refused"] or not rows[-1]["latency"]["final"]["p90"] <= args.limit:
                    break
                n *= 2
    except KeyboardInterrupt:
        print("interrupted: writing what was measured", file=sys.stderr)
    if args.offline:
        report["offline"] = offline_reference(args.file, args.model, args.seconds, args.targets)
    ok = [r["n"] for r in rows if not r["refused"] and r["latency"]["final"]["p90"] <= args.limit]
    report["max_n_within_limit"] = max(ok) if ok else 0
    if rows and "offline" in report and "server" in rows[0]:
        report["streaming_to_offline_cpu_ratio"] = (
            rows[0]["server"]["cpu_seconds_per_audio_second"] / report["offline"]["cpu_seconds_per_audio_second"])
    report["table"] = print_table(rows)
    if rows:
        args.out.mkdir(parents=True, exist_ok=True)
        stem = args.out / f"sweep-{args.model.replace('/', '_')}"
        plot(rows, Path(f"{stem}.png"),
             f"{args.model}, targets {','.join(args.targets) or '-'}, {report['machine']['cores']} cores "
             f"{report['machine']['cpu'][:40]}")
        print(f"wrote {stem}.json and {stem}.png; largest N with p90 ≤ {args.limit}s: {report['max_n_within_limit']}")
        if "streaming_to_offline_cpu_ratio" in report:
            print(f"streaming/offline CPU per audio second: {report['streaming_to_offline_cpu_ratio']:.2f}")
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("run", "sweep", "offline", "pipeline", "baseline", "batching", "accuracy"):
        s = sub.add_parser(name)
        s.add_argument("--file", type=Path, default=DEFAULT_DATA, help="recording (a .json with utterances beside it)")
        s.add_argument("--seconds", type=float, default=None, help="use only the first SECONDS of the recording")
        s.add_argument("--model", default="base")
        s.add_argument("--targets", type=lambda v: [t for t in v.split(",") if t], default=["pt"])
        s.add_argument("--out", type=Path, default=Path("bench/results"))
        if name in ("pipeline", "batching", "accuracy"):
            s.add_argument("--engine", default="auto", help="ASR engine: auto, ctranslate2, transformers, hybrid")
        if name == "batching":
            s.add_argument("--device", default="cpu")
        if name not in ("offline", "pipeline", "baseline", "batching", "accuracy"):
            s.add_argument("--spawn", action="store_true", help="start the gateway (else use --url)")
            s.add_argument("--url", default="wss://localhost:8443/v1/stream")
            s.add_argument("--cafile")
            s.add_argument("--insecure", action="store_true", help="skip certificate checks (self-signed)")
            s.add_argument("--max-sessions", type=int, default=64, help="gateway --max-sessions when spawning")
            s.add_argument("--gateway-flag", action="append", default=[], help="extra flag for the spawned gateway")
        if name == "pipeline":
            s.add_argument("--source-language", default="en", help="the sessions' source language, or auto")
        if name == "accuracy":
            s.add_argument("--shifts", type=lambda v: tuple(float(x) for x in v.split(",")), default=(0.0,),
                           help="comma-separated seconds of silence put in front of every stream, one run each "
                                "(e.g. 0,0.1,0.3,0.75); default 0")
            s.add_argument("--continuous", action="store_true",
                           help="join the extra streams' clips with pauses under 0.1 s: long speech that only "
                                "the maximum segment length cuts")
            s.add_argument("--causal", action="store_true",
                           help="also offline transcribe without look-ahead: committed at each streaming final's "
                                "end (slow: one transcribe of the audio so far per final)")
        if name == "run":
            s.add_argument("--sessions", type=int, default=1)
            s.add_argument("--stagger", type=float, default=3.0,
                           help="sessions start at random times within this many seconds (arrivals over time "
                                "meet the gateway's latency-based admission)")
            s.add_argument("--encoding", default="pcm_s16le", choices=["pcm_s16le", *CONTAINERS],
                           help="what the sessions send: PCM, or the recording encoded as Opus in Ogg or WebM")
        if name == "sweep":
            s.add_argument("--limit", type=float, default=2.0, help="stop when p90 final latency passes this")
            s.add_argument("--max-n", type=int, default=64)
            s.add_argument("--no-offline", dest="offline", action="store_false")
    from . import gpu_check

    gpu_check.add_arguments(sub.add_parser("gpu", help="GPU check: torch engine, agreement, streams per GPU"))
    args = p.parse_args(argv)
    if args.command == "gpu":
        return gpu_check.main(argv[1:] if argv else sys.argv[2:])
    if args.command == "offline":
        report = offline_reference(args.file, args.model, args.seconds, args.targets)
        print(json.dumps(report, indent=1))
    elif args.command == "batching":
        from .batching_bench import run as batching_run

        report = batching_run(args.file, args.model, args.engine, args.device)
        report["machine"] = machine()
    elif args.command == "accuracy":
        from .accuracy import run as accuracy_run

        report = accuracy_run(args.file.parent, args.model, args.shifts, args.continuous, args.engine,
                              args.causal)
        report["machine"] = machine()
    elif args.command == "pipeline":
        from .pipeline_bench import run as pipeline_run

        report = pipeline_run(args.file, args.model, args.seconds, args.source_language, args.engine)
        report["machine"] = machine()
        print(json.dumps(report, indent=1))
    elif args.command == "baseline":
        from .baseline import run as baseline_run

        report = baseline_run(args.file, args.model, args.seconds)
        report["machine"] = machine()
        print(json.dumps(report, indent=1))
    else:
        report = asyncio.run(command_run(args) if args.command == "run" else command_sweep(args))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.command}-{args.model.replace('/', '_')}.json"
    path.write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
