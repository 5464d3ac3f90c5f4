"""The ``/v1/stream`` WebSocket: one connection, one pipeline session.

A connection goes AWAITING_START → STREAMING → STOPPING → CLOSED. One writer task owns every send and
the close (it assigns ``seq``); everything else hands it messages through the connection's outbox. The
reader (client → session) and the pump (session events → outbox) run in a TaskGroup beside it: when the
client vanishes the reader or writer raises and the group cancels the rest; leaving ``async with session``
then cancels the session's own tasks.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
import uuid
from enum import Enum
from typing import Any

from pydantic import ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from pipeline import (
    AudioFormat,
    AudioFormatError,
    BadAudioError,
    PipelineError,
    Session,
    SessionConfig,
    StreamingConfig,
    TranslationUnavailableError,
    UnsupportedLanguageError,
)

from .auth import origin_ok, token_ok
from .limits import AudioRate
from .outbox import Outbox, SlowClient
from .protocol import (
    CLIENT_MESSAGE,
    PROTOCOL_VERSION,
    STREAM_HINT,
    AudioMessage,
    CloseCode,
    ConfigMessage,
    ErrorCode,
    StartMessage,
    StopMessage,
    TextMessage,
    describe_validation_error,
    error_message,
    event_message,
    start_from_query,
)
from .settings import Settings
from .state import GatewayState

log = logging.getLogger("gateway.stream")

# Audio a real-time client may be ahead of the wall clock (its capture buffers, network jitter).
REAL_TIME_SLACK_S = 2.0


class ConnState(Enum):
    AWAITING_START = "awaiting_start"
    STREAMING = "streaming"
    STOPPING = "stopping"
    CLOSED = "closed"


class ClientGone(Exception):
    """The client disconnected before the session ended."""


def close_code_for(exc: BaseException) -> CloseCode:
    if isinstance(exc, (AudioFormatError, BadAudioError)):
        return CloseCode.UNSUPPORTED_DATA
    if isinstance(exc, (UnsupportedLanguageError, TranslationUnavailableError)):
        return CloseCode.POLICY_VIOLATION
    return CloseCode.INTERNAL_ERROR


def session_config(start: StartMessage, settings: Settings) -> SessionConfig:
    audio = AudioFormat(start.audio.encoding, start.audio.sample_rate, start.audio.channels)
    return SessionConfig(
        audio=audio, source_language=start.source_language, languages=tuple(start.languages),
        targets=tuple(start.targets),
        partials=start.partials, final_beam_size=settings.final_beam_size,
        eager_final_max_s=settings.eager_final_max_s,
        streaming=StreamingConfig(min_silence_s=settings.min_silence_ms / 1000, context_s=settings.context_s),
    )


class StreamConnection:
    """One WebSocket: a writer task owns every send and the close; the rest talks to it through the outbox."""

    def __init__(self, ws: WebSocket, state: GatewayState) -> None:
        self.ws = ws
        self.state = state
        self.settings = state.settings
        self.id = uuid.uuid4().hex[:12]
        self.client = ws.client.host if ws.client else "unknown"
        self.conn_state = ConnState.AWAITING_START
        self.outbox = Outbox(self.settings.max_pending_messages, self.settings.max_send_delay_s)
        self._close: tuple[CloseCode, str] = (CloseCode.NORMAL, "end of stream")
        self._seq = 0
        self._audio_counted = 0.0
        self._rate = AudioRate(self.settings.max_audio_rate, self.settings.audio_burst_s)
        self._too_fast_told = False
        self._told_stopping = False
        self._streaming_since = time.monotonic()
        self._sent_ahead = False

    # ---- output: everything goes through the outbox to the writer ---------------------------------
    def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "error":
            self.state.metrics.errors.labels(message["code"]).inc()
        self.outbox.put(message)

    def close(self, code: CloseCode, reason: str) -> None:
        """Close once everything queued so far is sent."""
        self._close = (code, reason)
        self.conn_state = ConnState.CLOSED
        self.outbox.finish()

    def fail(self, code: ErrorCode, message: str, close: CloseCode) -> None:
        """A fatal error, then the close."""
        log.info("session %s: %s: %s", self.id, code.value, message)
        if code in (ErrorCode.OVERLOADED, ErrorCode.UNAUTHORIZED, ErrorCode.FORBIDDEN_ORIGIN):
            self.state.metrics.sessions_refused.labels(code.value).inc()
        self.send(error_message(code, message, fatal=True))
        self.close(close, message)

    async def _write(self) -> None:
        while (message := await self.outbox.get()) is not None:
            self._seq += 1
            try:
                await self.ws.send_text(json.dumps({"type": message["type"], "seq": self._seq, **message}))
            except (WebSocketDisconnect, OSError, RuntimeError) as exc:
                raise ClientGone() from exc
        await self._close_socket(*self._close)

    async def _close_socket(self, code: CloseCode, reason: str) -> None:
        if self.ws.application_state is WebSocketState.CONNECTED:
            try:
                await self.ws.close(code=int(code), reason=reason[:120])
            except (OSError, RuntimeError):
                pass  # the client is already gone

    # ---- lifecycle ------------------------------------------------------------------------------
    async def run(self) -> None:
        await self.ws.accept()
        if not self.state.per_client.acquire(self.client):
            self.fail(ErrorCode.OVERLOADED, f"too many connections from {self.client} "
                      f"(limit {self.settings.max_connections_per_client})", CloseCode.TRY_AGAIN_LATER)
            return await self._write()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._write())
                group.create_task(self._converse())
        except* ClientGone:
            log.info("session %s: client disconnected", self.id)
        except* SlowClient as slow:
            reason = f"client too slow: {slow.exceptions[0]}"
            log.warning("session %s: %s", self.id, reason)
            self.state.metrics.errors.labels("slow_client").inc()
            await self._close_socket(CloseCode.POLICY_VIOLATION, reason)
        finally:
            self.state.per_client.release(self.client)

    async def _converse(self) -> None:
        settings = self.settings
        if not origin_ok(self.ws, settings.allow_origins):
            origin = self.ws.headers.get("origin")
            return self.fail(ErrorCode.FORBIDDEN_ORIGIN, f"origin {origin} is not allowed", CloseCode.POLICY_VIOLATION)
        if not token_ok(self.ws, settings.tokens):
            return self.fail(ErrorCode.UNAUTHORIZED, "missing or wrong API token "
                             "(Authorization: Bearer TOKEN, or ?token=TOKEN)", CloseCode.POLICY_VIOLATION)
        start = await self._start_message()
        if start is not None:
            await self._serve(start)

    async def _start_message(self) -> StartMessage | None:
        try:
            from_query = start_from_query(dict(self.ws.query_params))
        except (ValidationError, ValueError) as exc:
            self.fail(ErrorCode.BAD_MESSAGE, "bad query parameters: " + describe_validation_error(exc, STREAM_HINT),
                      CloseCode.POLICY_VIOLATION)
            return None
        if from_query is not None:
            return from_query
        while True:
            message = await self._receive()
            if isinstance(message, StartMessage):
                return message
            if message is not None:
                self.send(error_message(ErrorCode.BAD_MESSAGE,
                                        f"expected a 'start' message first, got {message.type!r}", fatal=False))

    async def _receive(self) -> Any:
        """The next client message: bytes, a parsed message, None after answering a bad one, or
        ``_IDLE`` when nothing came for the idle timeout."""
        try:
            raw = await asyncio.wait_for(self.ws.receive(), self.settings.idle_timeout_s)
        except TimeoutError:
            return _IDLE
        if raw["type"] == "websocket.disconnect":
            raise ClientGone()
        if raw.get("bytes") is not None:
            if self.conn_state is ConnState.AWAITING_START:
                self.send(error_message(ErrorCode.BAD_MESSAGE,
                                        "audio before 'start'; send a start message first", fatal=False))
                return None
            return raw["bytes"]
        try:
            return CLIENT_MESSAGE.validate_json(raw.get("text") or "")
        except ValidationError as exc:
            self.send(error_message(ErrorCode.BAD_MESSAGE, describe_validation_error(exc, STREAM_HINT), fatal=False))
            return None

    async def _serve(self, start: StartMessage) -> None:
        state, settings = self.state, self.settings
        if state.engines is None:
            return self.fail(ErrorCode.OVERLOADED, "models are still loading; try again shortly",
                             CloseCode.TRY_AGAIN_LATER)
        if state.draining:
            return self.fail(ErrorCode.GOING_AWAY, "the server is shutting down", CloseCode.GOING_AWAY)
        if busy := state.refusal():
            return self.fail(ErrorCode.OVERLOADED, busy, CloseCode.TRY_AGAIN_LATER)
        try:
            session = Session(state.engines, session_config(start, settings), observer=self)
        except PipelineError as exc:
            return self.fail(ErrorCode(exc.code), str(exc), close_code_for(exc))
        self._bytes_per_second = _pcm_bytes_per_second(start)
        state.live_sessions[self] = session  # no await since the limit check: admission cannot race
        self._streaming_since = time.monotonic()
        state.metrics.sessions_started.inc()
        self.conn_state = ConnState.STREAMING
        try:
            async with session:
                self.send({
                    "type": "ready", "session": self.id, "protocol": PROTOCOL_VERSION,
                    "source_language": start.source_language, "languages": start.languages,
                    "targets": list(session.targets),
                    "models": state.engines.describe(), "limits": settings.client_limits(),
                })
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._read(session))
                    group.create_task(self._pump(session))
        finally:
            state.session_ended(self)

    def observe(self, stage: str, seconds: float) -> None:
        """The session's Observer: stage metrics, and final latencies for admission while in real time."""
        self.state.metrics.observe(stage, seconds)
        if stage == "final_latency" and not self._sent_ahead:
            self.state.admission.record(seconds)

    async def finish(self, session: Session, code: ErrorCode, message: str) -> None:
        """End the session early but cleanly: tell the client why, then finals and ``end`` as after stop."""
        if self.conn_state is ConnState.STREAMING:
            self.conn_state = ConnState.STOPPING
            self.send(error_message(code, message, fatal=False))
            await session.stop()

    async def _read(self, session: Session) -> None:
        while True:
            try:
                message = await self._receive()
            except ClientGone:
                if self.conn_state is ConnState.CLOSED:
                    return  # we closed it after 'end' or a fatal error
                raise
            if message is _IDLE:
                if self.conn_state is ConnState.STREAMING:
                    await self.finish(session, ErrorCode.IDLE_TIMEOUT,
                                      f"no input for {self.settings.idle_timeout_s:g} s; finishing the session")
                continue
            if message is None:
                continue
            if self.conn_state is not ConnState.STREAMING and not isinstance(message, StopMessage):
                if not self._told_stopping:  # once, not once per late audio frame
                    self.send(error_message(ErrorCode.BAD_MESSAGE, "the stream is stopping; input after "
                                            "'stop' (or after the server finished the session) is ignored",
                                            fatal=False))
                    self._told_stopping = True
            elif isinstance(message, bytes):
                await self._feed(session, message)
            elif isinstance(message, AudioMessage):
                try:
                    data = base64.b64decode(message.data, validate=True)
                except binascii.Error:
                    self.send(error_message(ErrorCode.BAD_MESSAGE, "audio.data is not valid base64", fatal=False))
                    continue
                await self._feed(session, data)
            elif isinstance(message, ConfigMessage):
                await self._apply(session.set_targets(message.targets))
            elif isinstance(message, TextMessage):
                await self._apply(session.feed_text(message.text, message.source_language))
            elif isinstance(message, StopMessage):
                if self.conn_state is ConnState.STREAMING:
                    self.conn_state = ConnState.STOPPING
                    await session.stop()
            elif isinstance(message, StartMessage):
                self.send(error_message(ErrorCode.BAD_MESSAGE, "the session has already started", fatal=False))

    async def _feed(self, session: Session, data: bytes) -> None:
        if self._bytes_per_second and not self._rate.take(len(data) / self._bytes_per_second):
            if not self._too_fast_told:  # once per burst of excess, not once per frame
                self.send(error_message(ErrorCode.TOO_FAST, (
                    f"audio arrives faster than {self.settings.max_audio_rate:g}x real time beyond a "
                    f"{self.settings.audio_burst_s:g} s burst; excess audio was dropped: send in real time"),
                    fatal=False))
                self._too_fast_told = True
            return
        self._too_fast_told = False
        await session.feed_audio(data)
        # PCM: count what arrived; containers: what the session has decoded so far
        seen = (self._audio_counted + len(data) / self._bytes_per_second if self._bytes_per_second
                else session.audio_seconds)
        self.state.metrics.audio_seconds.inc(max(0.0, seen - self._audio_counted))
        self._audio_counted = seen
        # A client that sends ahead of real time (a file at once) waits for its own backlog for the rest of
        # the session: its late finals say nothing of the server's load.
        self._sent_ahead |= seen > time.monotonic() - self._streaming_since + REAL_TIME_SLACK_S
        if seen >= self.settings.max_session_s:
            await self.finish(session, ErrorCode.SESSION_TOO_LONG,
                              f"the session reached its limit of {self.settings.max_session_s:g} s of audio")

    async def _apply(self, request) -> None:
        """Run a control request; a refusal is a non-fatal error, the session goes on."""
        try:
            await request
        except PipelineError as exc:
            self.send(error_message(ErrorCode(exc.code), str(exc), fatal=False))

    async def _pump(self, session: Session) -> None:
        try:
            async for event in session.events():
                self.send(event_message(event))
        except PipelineError as exc:
            self.fail(ErrorCode(exc.code), str(exc), close_code_for(exc))
        except (SlowClient, ClientGone):
            raise
        except Exception as exc:
            log.exception("session %s: internal error", self.id)
            self.fail(ErrorCode.INTERNAL, f"internal server error ({type(exc).__name__}); "
                      "the session was closed, the server goes on", CloseCode.INTERNAL_ERROR)
        else:
            self.close(*self._end_close())

    def _end_close(self) -> tuple[CloseCode, str]:
        if self.state.draining:
            return CloseCode.GOING_AWAY, "server shutting down"
        return CloseCode.NORMAL, "end of stream"


_IDLE = object()


def _pcm_bytes_per_second(start: StartMessage) -> int:
    """Bytes per second of audio for PCM encodings (0 for containers: their rate is not checked)."""
    width = {"pcm_s16le": 2, "pcm_f32le": 4}.get(start.audio.encoding, 0)
    return width * start.audio.sample_rate * start.audio.channels


async def stream_endpoint(ws: WebSocket) -> None:
    """Starlette WebSocket route for /v1/stream."""
    state: GatewayState = ws.app.state.gateway
    task = asyncio.current_task()
    if task is not None:
        state.track(task)
    await StreamConnection(ws, state).run()
