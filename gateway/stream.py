"""The ``/v1/stream`` WebSocket: one connection, one pipeline session.

A connection goes AWAITING_START → STREAMING → STOPPING → CLOSED. Its reader (client → session) and
pump (session events → client) run in one TaskGroup: when the client vanishes the reader raises and the
group cancels the pump; leaving the ``async with session`` then cancels the session's own tasks. Sends
are serialised by one lock, which also assigns ``seq``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
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
        audio=audio, source_language=start.source_language, targets=tuple(start.targets),
        partials=start.partials, final_beam_size=settings.final_beam_size,
        streaming=StreamingConfig(min_silence_s=settings.min_silence_ms / 1000),
    )


def presented_token(ws: WebSocket) -> str | None:
    auth = ws.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return ws.query_params.get("token")


def token_ok(ws: WebSocket, tokens: tuple[str, ...]) -> bool:
    """Constant-time comparison against every configured token (no tokens: auth is off)."""
    if not tokens:
        return True
    given = (presented_token(ws) or "").encode()
    return any(hmac.compare_digest(given, t.encode()) for t in tokens)


def origin_ok(ws: WebSocket, allowed: tuple[str, ...]) -> bool:
    """Same origin, an allow-listed origin, or no Origin at all (non-browser clients)."""
    origin = ws.headers.get("origin")
    if origin is None:
        return True
    host = ws.headers.get("host", "")
    same = {f"https://{host}", f"http://{host}"}
    return origin in same or origin in allowed or "*" in allowed


class StreamConnection:
    def __init__(self, ws: WebSocket, state: GatewayState) -> None:
        self.ws = ws
        self.state = state
        self.id = uuid.uuid4().hex[:12]
        self.conn_state = ConnState.AWAITING_START
        self._seq = 0
        self._send_lock = asyncio.Lock()

    async def send(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            if self.conn_state is ConnState.CLOSED:
                return
            self._seq += 1
            try:
                await self.ws.send_text(json.dumps({"type": message["type"], "seq": self._seq, **message}))
            except (WebSocketDisconnect, OSError, RuntimeError) as exc:
                self.conn_state = ConnState.CLOSED
                raise ClientGone() from exc

    async def close(self, code: CloseCode, reason: str = "") -> None:
        async with self._send_lock:
            if self.conn_state is ConnState.CLOSED:
                return
            self.conn_state = ConnState.CLOSED
            if self.ws.application_state is WebSocketState.CONNECTED:
                try:
                    await self.ws.close(code=int(code), reason=reason[:120])
                except (OSError, RuntimeError):
                    pass  # the client is already gone; nothing left to tell it

    async def fail(self, code: ErrorCode, message: str, close: CloseCode) -> None:
        """Send a fatal error and close the connection."""
        log.info("session %s: %s: %s", self.id, code.value, message)
        await self.send(error_message(code, message, fatal=True))
        await self.close(close, message)

    async def run(self) -> None:
        settings = self.state.settings
        await self.ws.accept()
        if not origin_ok(self.ws, settings.allow_origins):
            origin = self.ws.headers.get("origin")
            return await self.fail(ErrorCode.FORBIDDEN_ORIGIN, f"origin {origin} is not allowed",
                                   CloseCode.POLICY_VIOLATION)
        if not token_ok(self.ws, settings.tokens):
            return await self.fail(ErrorCode.UNAUTHORIZED, "missing or wrong API token "
                                   "(Authorization: Bearer TOKEN, or ?token=TOKEN)", CloseCode.POLICY_VIOLATION)
        try:
            start = await self._start_message()
        except ClientGone:
            return
        if start is None:
            return
        await self._serve(start)

    async def _start_message(self) -> StartMessage | None:
        try:
            from_query = start_from_query(dict(self.ws.query_params))
        except (ValidationError, ValueError) as exc:
            await self.fail(ErrorCode.BAD_MESSAGE, "bad query parameters: " + describe_validation_error(exc, STREAM_HINT),
                            CloseCode.POLICY_VIOLATION)
            return None
        if from_query is not None:
            return from_query
        while True:
            message = await self._receive()
            if message is None:
                continue
            if isinstance(message, StartMessage):
                return message
            await self.send(error_message(ErrorCode.BAD_MESSAGE,
                                          f"expected a 'start' message first, got {message.type!r}", fatal=False))

    async def _receive(self) -> Any:
        """The next client message: bytes, a parsed message, or None after answering a bad one."""
        raw = await self.ws.receive()
        if raw["type"] == "websocket.disconnect":
            raise ClientGone()
        if raw.get("bytes") is not None:
            if self.conn_state is ConnState.AWAITING_START:
                await self.send(error_message(ErrorCode.BAD_MESSAGE,
                                              "audio before 'start'; send a start message first", fatal=False))
                return None
            return raw["bytes"]
        try:
            return CLIENT_MESSAGE.validate_json(raw.get("text") or "")
        except ValidationError as exc:
            await self.send(error_message(ErrorCode.BAD_MESSAGE, describe_validation_error(exc, STREAM_HINT),
                                          fatal=False))
            return None

    async def _serve(self, start: StartMessage) -> None:
        state, settings = self.state, self.state.settings
        if state.engines is None:
            return await self.fail(ErrorCode.OVERLOADED, "models are still loading; try again shortly",
                                   CloseCode.TRY_AGAIN_LATER)
        if state.sessions_active >= settings.max_sessions:
            return await self.fail(ErrorCode.OVERLOADED,
                                   f"the server is at its limit of {settings.max_sessions} sessions; try again later",
                                   CloseCode.TRY_AGAIN_LATER)
        try:
            session = Session(state.engines, session_config(start, settings))
        except PipelineError as exc:
            return await self.fail(ErrorCode(exc.code), str(exc), close_code_for(exc))
        state.sessions_active += 1
        self.conn_state = ConnState.STREAMING
        try:
            async with session:
                await self.send({
                    "type": "ready", "session": self.id, "protocol": PROTOCOL_VERSION,
                    "source_language": start.source_language, "targets": list(session.targets),
                    "models": state.engines.describe(),
                })
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._read(session))
                    group.create_task(self._pump(session))
        except* ClientGone:
            log.info("session %s: client disconnected", self.id)
        finally:
            state.sessions_active -= 1
            self.conn_state = ConnState.CLOSED

    async def _read(self, session: Session) -> None:
        while True:
            try:
                message = await self._receive()
            except ClientGone:
                if self.conn_state is ConnState.CLOSED:
                    return  # we closed it after 'end' or a fatal error
                raise
            if message is None:
                continue
            if self.conn_state is ConnState.STOPPING and not isinstance(message, StopMessage):
                await self.send(error_message(ErrorCode.BAD_MESSAGE, "the stream is stopping; no more input", fatal=False))
            elif isinstance(message, bytes):
                await session.feed_audio(message)
            elif isinstance(message, AudioMessage):
                try:
                    data = base64.b64decode(message.data, validate=True)
                except binascii.Error:
                    await self.send(error_message(ErrorCode.BAD_MESSAGE, "audio.data is not valid base64", fatal=False))
                    continue
                await session.feed_audio(data)
            elif isinstance(message, ConfigMessage):
                await self._apply(session.set_targets(message.targets))
            elif isinstance(message, TextMessage):
                await self._apply(session.feed_text(message.text, message.source_language))
            elif isinstance(message, StopMessage):
                if self.conn_state is ConnState.STREAMING:
                    self.conn_state = ConnState.STOPPING
                    await session.stop()
            elif isinstance(message, StartMessage):
                await self.send(error_message(ErrorCode.BAD_MESSAGE, "the session has already started", fatal=False))

    async def _apply(self, request) -> None:
        """Run a control request; a refusal is a non-fatal error, the session goes on."""
        try:
            await request
        except PipelineError as exc:
            await self.send(error_message(ErrorCode(exc.code), str(exc), fatal=False))

    async def _pump(self, session: Session) -> None:
        try:
            async for event in session.events():
                await self.send(event_message(event))
        except ClientGone:
            raise
        except PipelineError as exc:
            await self.fail(ErrorCode(exc.code), str(exc), close_code_for(exc))
        except Exception as exc:
            log.exception("session %s: internal error", self.id)
            await self.fail(ErrorCode.INTERNAL, f"internal server error ({type(exc).__name__}); "
                            "the session was closed, the server goes on", CloseCode.INTERNAL_ERROR)
        else:
            await self.close(CloseCode.NORMAL, "end of stream")


async def stream_endpoint(ws: WebSocket) -> None:
    """Starlette WebSocket route for /v1/stream."""
    state: GatewayState = ws.app.state.gateway
    task = asyncio.current_task()
    if task is not None:
        state.track(task)
    await StreamConnection(ws, state).run()
