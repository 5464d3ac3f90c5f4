"""Health, readiness, the page and POST /v1/translate over real HTTPS."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture
async def http(server):
    async with httpx.AsyncClient(base_url=server.url, verify=server.ssl, timeout=60) as client:
        yield client


async def test_health_ready_and_page(http):
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    ready = (await http.get("/readyz")).json()
    assert ready["status"] == "ready" and "whisper-base" in ready["models"]["asr"]
    page = await http.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]


async def test_translate_english_to_portuguese(http):
    response = await http.post("/v1/translate", json={
        "text": "Please enter your password followed by the pound key.", "source_language": "en", "targets": ["pt"],
    })
    assert response.status_code == 200, response.text
    assert "senha" in response.json()["translations"]["pt"].lower()


async def test_translate_serves_regional_tags_by_their_language(http):
    response = await http.post("/v1/translate", json={
        "text": "Good morning.", "source_language": "en-US", "targets": ["pt-BR", "PT_pt"]})
    assert response.status_code == 200, response.text
    assert list(response.json()["translations"]) == ["pt"] and response.json()["source_language"] == "en"


async def test_translate_identity_and_reverse(http):
    response = await http.post("/v1/translate", json={
        "text": "Bom dia a todos.", "source_language": "pt", "targets": ["en", "pt"]})
    body = response.json()["translations"]
    assert "good morning" in body["en"].lower() and body["pt"] == "Bom dia a todos."


async def test_translate_detects_the_source_language_when_asked(http):
    response = await http.post("/v1/translate", json={
        "text": "Bom dia, como vai?", "source_language": "auto", "targets": ["en"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["source_language"] == "pt" and "good morning" in body["translations"]["en"].lower()
    unknown = await http.post("/v1/translate", json={
        "text": "こんにちは世界", "source_language": "auto", "targets": ["pt"]})
    assert unknown.status_code == 422 and "no translation from 'ja' to 'pt'" in unknown.json()["message"]


@pytest.mark.parametrize("body,fragment", [
    (b"{not json", "JSON"),
    (b'{"text": "", "source_language": "en", "targets": ["pt"]}', "text"),
    (b'{"text": "hi", "source_language": "en", "targets": []}', "targets"),
    (b'{"text": "hi", "source_language": "en", "targets": "pt"}', "targets"),
    (b'{"text": "hi", "targets": ["pt"]}', "source_language"),
    (b'{"text": "' + b"a" * 5000 + b'", "source_language": "en", "targets": ["pt"]}', "text"),
    (b'{"text": "hi", "source_language": "en", "targets": ["ja"]}', "no translation from 'en' to 'ja'"),
    (b'{"text": "hi", "source_language": "english", "targets": ["pt"]}', "'english' is not a language code"),
    (b'{"text": "hi", "source_language": "en", "targets": ["portuguese"]}', "'portuguese' is not a language code"),
])
async def test_translate_rejects_bad_bodies_with_422(http, body, fragment):
    response = await http.post("/v1/translate", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert fragment in response.json()["message"]
