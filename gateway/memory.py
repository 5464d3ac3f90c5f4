"""Keep the server's resident memory flat over long runs (glibc malloc tuning)."""

from __future__ import annotations

import asyncio
import ctypes

from pipeline.memory import release_free_memory


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives every thread that allocates its own malloc arena; with model worker threads and the
    default executor that fragments memory and RSS creeps up. Two arenas keep it flat. (A fixed mmap
    threshold flattened it further but made every final decode fault in fresh pages: +0.15 s latency.)
    No-op off glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


async def trim_memory_periodically(interval_s: float = 30.0) -> None:
    """Hand freed heap memory back to the OS now and then (the ASR worker also does after each batch;
    this catches what the rest of the process frees)."""
    while True:
        await asyncio.sleep(interval_s)
        await asyncio.to_thread(release_free_memory)
