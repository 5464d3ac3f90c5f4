"""The GPU check script runs end to end (on the CPU, tiny random model), so it is ready for a GPU."""

from __future__ import annotations

import json

from bench.__main__ import main


def test_gpu_check_smoke_on_cpu(tmp_path):
    assert main(["gpu", "--smoke", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    assert report["agreement"]["float32"]["same_greedy_text"]
    assert report["agreement"]["float32"]["encoder_max_abs_diff"] <= 1e-4
    (result,) = report["capacity"]
    rows = result["rows"]
    assert [r["streams"] for r in rows] == [1, 2]
    assert all(r["updates"] > 0 and r["p90_s"] > 0 for r in rows)
    assert any(r["final_p90_s"] > 0 for r in rows)  # 6 s per stream: every stream finishes an utterance
    assert "| N | updates |" in report["tables"][0]
