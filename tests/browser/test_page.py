"""The web page in a real headless Chromium, with a fake microphone playing a real recording."""

from __future__ import annotations

import asyncio
import json
import shutil
import wave
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bench.wer import wer
from tests.conftest import ROOT, free_port, run_server, to_s16

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip("Debian chromium and chromium-driver are not installed (scripts/test.sh installs them as root)",
                allow_module_level=True)

ARTIFACTS = ROOT / "test-artifacts"
SPEECH_SECONDS = 21.0


@pytest.fixture(scope="module")
def microphone_wav(dev_long, tmp_path_factory) -> tuple[Path, list[dict]]:
    """The first utterances of en-dev-long, then silence, as the fake microphone's WAV file."""
    audio, meta = dev_long
    clip = np.concatenate([audio[: int(16000 * SPEECH_SECONDS)], np.zeros(16000 * 3, np.float32)])
    path = tmp_path_factory.mktemp("mic") / "speech.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(to_s16(clip))
    return path, [u for u in meta["utterances"] if u["end"] <= SPEECH_SECONDS]


def chromium(wav: Path):
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--ignore-certificate-errors", "--use-fake-ui-for-media-stream",
                 "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={wav}%noloop",
                 "--autoplay-policy=no-user-gesture-required", "--window-size=1100,900"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))


async def wait_for(driver, script: str, timeout: float = 90):
    """Poll a JS expression (in a thread: the server shares this event loop) until it is truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await asyncio.to_thread(driver.execute_script, f"return ({script});")
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {script}")
        await asyncio.sleep(0.5)


FINALS_JS = """[...document.querySelectorAll('li.segment.final:not(.typed)')].map(li => ({
  text: li.querySelector('.stable').textContent,
  translations: Object.fromEntries([...li.querySelectorAll('.translation')].map(d => [d.dataset.target, d.querySelector('span').textContent]))
}))"""


async def test_live_microphone_session_in_chromium(server, microphone_wav):
    wav, utterances = microphone_wav
    driver = await asyncio.to_thread(chromium, wav)
    try:
        await asyncio.to_thread(driver.get, server.url + "/")
        await asyncio.to_thread(driver.execute_script, "document.querySelector('#start').click()")
        await wait_for(driver, "document.querySelector('#conn').dataset.state === 'live'", 30)
        await wait_for(driver, "document.querySelectorAll('li.segment.final').length >= 1")
        # change targets mid-stream: later segments get English too
        await asyncio.to_thread(driver.execute_script, "document.querySelector('input[value=en]').click()")
        await wait_for(driver, "document.querySelectorAll('li.segment:not(.final)').length >= 1 || "
                               "document.querySelectorAll('li.segment.final').length >= 3")
        ARTIFACTS.mkdir(exist_ok=True)
        await asyncio.to_thread(driver.save_screenshot, str(ARTIFACTS / "page-mid-session.png"))
        await wait_for(driver, f"document.querySelectorAll('li.segment.final').length >= {len(utterances)}",
                       SPEECH_SECONDS + 60)
        await asyncio.sleep(2)
        await asyncio.to_thread(driver.execute_script, "document.querySelector('#stop').click()")
        await wait_for(driver, "document.querySelector('#conn').textContent.startsWith('Finished')", 60)
        finals = await asyncio.to_thread(driver.execute_script, f"return {FINALS_JS};")
        await asyncio.to_thread(driver.save_screenshot, str(ARTIFACTS / "page-finished.png"))

        reference = " ".join(u["text"] for u in utterances)
        hypothesis = " ".join(f["text"] for f in finals)
        assert wer(reference, hypothesis) <= 0.15, (reference, hypothesis)
        assert all(f["translations"].get("pt") for f in finals), finals
        assert "en" in finals[-1]["translations"] and "en" not in finals[0]["translations"]

        # typed text, with no session running: the page uses POST /v1/translate, and with the spoken
        # language on "Detect automatically" the gateway finds the text's
        await asyncio.to_thread(driver.execute_script, """
            document.querySelector('#source').value = 'auto';
            document.querySelector('#typed-text').value = 'Bom dia, como vai?';
            document.querySelector('#typed button').click();""")
        typed = await wait_for(driver, "document.querySelector('li.typed .translation[data-target=en] span')"
                                       "?.textContent")
        assert "good morning" in typed.lower()
        assert not await asyncio.to_thread(driver.execute_script, "return document.querySelector('#error').textContent")
    finally:
        await asyncio.to_thread(driver.quit)


async def test_page_shows_the_servers_refusal(engines, base_settings, microphone_wav):
    wav, _ = microphone_wav
    from tests.gateway.test_stream import START, open_ws, recv_json

    async with run_server(replace(base_settings, port=free_port(), max_sessions=1), engines) as full:
        occupant = await open_ws(full)  # takes the only session
        await occupant.send(json.dumps(START))
        assert (await recv_json(occupant))["type"] == "ready"
        driver = await asyncio.to_thread(chromium, wav)
        try:
            await asyncio.to_thread(driver.get, full.url + "/")
            await asyncio.to_thread(driver.execute_script, "document.querySelector('#start').click()")
            message = await wait_for(driver, "!document.querySelector('#error').hidden && "
                                             "document.querySelector('#error').textContent", 30)
            assert "refused" in message and "limit of 1 sessions" in message
            state = await wait_for(driver, "document.querySelector('#conn').dataset.state === 'error' && "
                                           "document.querySelector('#conn').textContent")
            assert "1013" in state
        finally:
            await asyncio.to_thread(driver.quit)
            await occupant.close()
