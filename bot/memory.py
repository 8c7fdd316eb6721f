"""Give memory the process freed back to the operating system, now and then.

glibc's allocator keeps freed memory for reuse and returns only what sits at the top of its
heaps; with many short-lived buffers (request bodies, JSON, database rows) a long-running
worker's resident size drifts upwards although what it holds does not. ``malloc_trim(0)``
returns every free page; it takes a few milliseconds, so it runs once a minute. Elsewhere
(musl, macOS) there is no such call and nothing is done.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import time
from collections.abc import Callable

TRIM_EVERY = 60.0
log = logging.getLogger("antam.memory")


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_MALLOC_TRIM = _find_malloc_trim()


def give_back() -> bool:
    """Return free heap pages to the system; False where the C library has no malloc_trim."""
    if _MALLOC_TRIM is None:
        return False
    started = time.perf_counter()
    _MALLOC_TRIM(0)
    log.debug("gave free memory back in %.1f ms", (time.perf_counter() - started) * 1000)
    return True


async def keep_giving_back(every: float = TRIM_EVERY) -> None:
    """Run give_back every ``every`` seconds until cancelled (one worker's background task)."""
    if _MALLOC_TRIM is None:
        return
    while True:
        await asyncio.sleep(every)
        give_back()
