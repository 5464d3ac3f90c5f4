"""Protocol v1 guarantees, checked on a recorded message list."""

from __future__ import annotations

from typing import Any


NOTICES = {"going_away", "idle_timeout", "session_too_long", "too_fast", "bad_message"}


def check_guarantees(messages: list[dict[str, Any]], targets: list[str]) -> None:
    """Every guarantee of docs/protocol.md that a finished stream can show."""
    assert [m["seq"] for m in messages] == list(range(1, len(messages) + 1)), "seq is not 1, 2, 3, ..."
    assert messages[0]["type"] == "ready" and messages[0]["protocol"] == 1
    assert messages[-1]["type"] == "end", f"last message is {messages[-1]}"
    final_seen: set[int] = set()
    finals: list[int] = []
    partial_after_final = []
    translations: dict[str, list[int]] = {t: [] for t in targets}
    for m in messages[1:-1]:
        if m["type"] == "transcript":
            if m["segment"] in final_seen:
                partial_after_final.append(m)
            if m["final"]:
                final_seen.add(m["segment"])
                finals.append(m["segment"])
                assert m["stable"] == m["text"]
            else:
                assert m["text"].startswith(m["stable"]), "stable is not a prefix of the partial"
            assert m["start"] <= m["end"]
        elif m["type"] == "translation":
            assert m["final"] is True
            assert m["segment"] in final_seen, "translation before its final transcript"
            translations[m["target"]].append(m["segment"])
        elif m["type"] == "error":
            assert not m["fatal"], f"fatal error in a stream that ended normally: {m}"
            if "segment" in m:  # a translation that failed: it stands in for that translation
                translations[m["target"]].append(m["segment"])
            else:
                assert m["code"] in NOTICES, f"unexpected error {m}"
    assert not partial_after_final, f"segment changed after its final: {partial_after_final[:1]}"
    assert finals == list(range(len(finals))), f"segments not finalised in order: {finals}"
    non_empty = [m["segment"] for m in messages if m["type"] == "transcript" and m["final"] and m["text"]]
    for target, segments in translations.items():
        assert segments == non_empty, f"{target}: translations for {segments}, finals {non_empty}"
    assert messages[-1]["segments"] == len(finals)
