from pathlib import Path

import pytest

from gateway.capacity import default_max_sessions
from gateway.protocol import StartMessage
from gateway.settings import build_parser, load_settings
from gateway.state import engine_config
from gateway.stream import session_config
from pipeline import EngineConfig, SessionConfig


def test_flags_environment_and_defaults(monkeypatch):
    monkeypatch.setenv("SPEECH_GATEWAY_MAX_SESSIONS", "7")
    monkeypatch.setenv("SPEECH_GATEWAY_TOKEN", "a,b")
    monkeypatch.setenv("SPEECH_GATEWAY_IDLE_TIMEOUT_S", "2.5")
    s = load_settings(["--port", "9443", "--allow-origin", "https://app.example", "--cert", "c.pem", "--key", "k.pem"])
    assert (s.port, s.max_sessions, s.idle_timeout_s) == (9443, 7, 2.5)
    assert s.tokens == ("a", "b") and s.allow_origins == ("https://app.example",)
    assert s.cert == Path("c.pem") and s.translators == ("bergamot",)
    assert load_settings(["--token", "z", "--max-sessions", "3"]).tokens == ("z",)


def test_cert_and_key_go_together():
    with pytest.raises(SystemExit, match="--cert and --key"):
        load_settings(["--cert", "c.pem"])


@pytest.mark.parametrize("seconds", ["-1", "29"])
def test_context_outside_whispers_window_is_refused(seconds):
    with pytest.raises(SystemExit, match="--context-s must be between 0 and 28"):
        load_settings(["--context-s", seconds])


def test_help_documents_every_flag_with_its_default():
    text = build_parser().format_help()
    for flag in ("--host", "--port", "--cert", "--key", "--model", "--device", "--compute-type", "--max-sessions",
                 "--allow-origin", "--token", "--log-level", "--insecure-http", "--idle-timeout-s"):
        assert flag in text
    assert "(default: 8443)" in text and "(default: base)" in text


def test_session_limit_comes_from_measured_capacity():
    assert load_settings([]).session_limit == default_max_sessions("base", "cpu")
    assert default_max_sessions("base", "cpu", cores=8) > default_max_sessions("base", "cpu", cores=2)
    assert default_max_sessions("tiny.en", "cpu", cores=2) >= default_max_sessions("base", "cpu", cores=2)
    assert load_settings(["--max-sessions", "5"]).session_limit == 5


def test_token_redaction_keeps_other_log_arguments_intact():
    import logging

    from gateway.server import RedactTokens

    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1,
                               '%s - "WebSocket %s" [accepted]', ("127.0.0.1:5", "/v1/stream?token=abc&x=1"), None)
    RedactTokens().filter(record)
    assert record.getMessage() == '127.0.0.1:5 - "WebSocket /v1/stream?token=<redacted>&x=1" [accepted]'
    mapping = logging.LogRecord("gateway", logging.INFO, __file__, 1, "models loaded: %s", ({"asr": "x"},), None)
    RedactTokens().filter(mapping)
    assert mapping.getMessage() == "models loaded: {'asr': 'x'}"


def test_session_tuning_flags_reach_the_session_and_the_gate():
    from gateway.protocol import StartMessage
    from gateway.state import GatewayState
    from gateway.stream import session_config

    settings = load_settings(["--eager-final-max-s", "0", "--min-silence-ms", "700", "--final-beam-size", "3",
                              "--admission-latency-s", "1.5", "--context-s", "0"])
    start = StartMessage.model_validate({"type": "start", "audio": {"encoding": "pcm_s16le", "sample_rate": 16000}})
    config = session_config(start, settings)
    assert (config.eager_final_max_s, config.streaming.min_silence_s, config.final_beam_size) == (0, 0.7, 3)
    assert config.streaming.context_s == 0
    assert GatewayState(settings).admission.limit_s == 1.5


def test_default_settings_give_the_pipeline_its_own_defaults():
    settings = load_settings([])
    assert engine_config(settings) == EngineConfig()
    start = StartMessage(type="start")
    config, default = session_config(start, settings), SessionConfig()
    assert (config.final_beam_size, config.eager_final_max_s) == (default.final_beam_size, default.eager_final_max_s)
    assert config.streaming == default.streaming
    assert build_parser().parse_args(["--batch-wait-ms", "2.5"]).batch_wait_ms == 2.5
