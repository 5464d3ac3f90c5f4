"""Plain HTTP endpoints: health, readiness and the text translation API."""

from __future__ import annotations

import asyncio
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from pipeline import AUTO, PipelineError
from pipeline.translating import run_route

from .auth import token_ok
from .protocol import MAX_TEXT_CHARS, LanguageCode, LanguageList, describe_validation_error
from .state import GatewayState


class TranslateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    source_language: LanguageCode  # or "auto": detected from the text
    targets: Annotated[LanguageList, Field(min_length=1)]


def _state(request: Request) -> GatewayState:
    return request.app.state.gateway


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


async def healthz(request: Request) -> JSONResponse:
    """The process is alive and serving."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Models are loaded and sessions can start."""
    state = _state(request)
    if state.engines is None:
        detail = f"loading failed: {state.load_error}" if state.load_error else "loading models"
        return JSONResponse({"status": "not_ready", "detail": detail}, status_code=503)
    return JSONResponse({"status": "ready", "models": state.engines.describe(),
                         "sessions": state.sessions_active, "max_sessions": state.settings.session_limit,
                         "admitting": state.refusal() is None,
                         "final_latency_p90_s": state.admission.p90()})


async def translate(request: Request) -> JSONResponse:
    """POST /v1/translate: {"text", "source_language", "targets"} → {"translations": {target: text},
    "source_language": code} (the code detected when the request said "auto")."""
    state = _state(request)
    if not token_ok(request, state.settings.tokens):
        return _error(401, "unauthorized", "missing or wrong API token (Authorization: Bearer TOKEN, or ?token=TOKEN)")
    try:
        body = TranslateRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        return _error(422, "bad_request", describe_validation_error(exc))
    if state.engines is None:
        return _error(503, "not_ready", "models are still loading; retry shortly")
    engines = state.engines
    source = body.source_language
    try:
        if source == AUTO:
            source = await engines.detect_text_language(body.text, body.targets)
        routes = {t: engines.router.route(source, t, has_audio=False) for t in body.targets}
        done: dict[tuple[str, str], str] = {}
        texts = [await run_route(engines, routes[t], body.text, done=done) for t in body.targets]
    except PipelineError as exc:
        return _error(422, exc.code, str(exc))
    except asyncio.CancelledError:
        raise
    return JSONResponse({"translations": dict(zip(body.targets, texts, strict=True)), "source_language": source})
