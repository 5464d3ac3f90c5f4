"""Carry out a translation route on the shared workers (text legs on the MT worker, Whisper's
speech → English leg on the ASR worker)."""

from __future__ import annotations

import numpy as np

from .asr import DecodeOptions
from .engines import Engines
from .errors import BadAudioError
from .scheduler import Priority
from .translation.router import Route


async def run_route(
    engines: Engines,
    route: Route,
    text: str,
    audio: np.ndarray | None = None,
    done: dict[tuple[str, str], str] | None = None,
    beam_size: int = 5,
) -> str:
    """Translate ``text`` (or ``audio`` for a speech leg) along ``route``.

    ``done`` memoises legs per segment, so one pivot to English serves every target that needs it.
    """
    done = {} if done is None else done
    for leg in route.legs:
        key = (leg.source, leg.target)
        if key not in done:
            if leg.backend is None:
                if audio is None:
                    raise BadAudioError("speech translation needs the segment's audio")
                options = DecodeOptions(language=leg.source, task="translate", beam_size=beam_size)
                result = await engines.decode(audio, options, Priority.FINAL)
                done[key] = result.text
            else:
                translated = await engines.translate(leg.backend, [text], leg.source, leg.target)
                done[key] = translated[0]
        text = done[key]
    return text
