"""A short end-to-end benchmark run: a spawned gateway, one real-time session, 20 s of speech."""

from __future__ import annotations

import json

from bench.__main__ import main


def test_bench_run_smoke(tmp_path, speech_dir):
    assert main(["run", "--spawn", "--model", "tiny.en", "--seconds", "20", "--sessions", "1",
                 "--file", str(speech_dir / "en-dev-long.flac"), "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "run-tiny.en.json").read_text())
    run = report["runs"][0]
    assert run["n"] == 1 and run["refused"] == 0 and run["errors"] == 0 and run["missed_utterances"] == 0
    assert run["latency"]["final"]["n"] == 4 and run["latency"]["final"]["p50"] > 0  # 4 utterances end by 20 s
    assert run["latency"]["translation_pt"]["n"] >= 4
    assert run["wer"] < 0.25
    assert run["server"]["rss_mb_max"] > 100


def test_bench_baseline_smoke(tmp_path, speech_dir):
    """The plain silence-then-decode server the pipeline is measured against: it hears every utterance."""
    assert main(["baseline", "--model", "tiny.en", "--seconds", "20",
                 "--file", str(speech_dir / "en-dev-long.flac"), "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "baseline-tiny.en.json").read_text())
    assert report["final_delay"]["n"] == 4 and report["final_delay"]["p50"] > 0
    assert report["wer"] < 0.25 and report["compute_per_audio_second"] > 0
