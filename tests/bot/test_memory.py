"""Freed memory goes back to the system (glibc keeps it otherwise)."""

from __future__ import annotations

import asyncio
import platform

import pytest

from bot import memory


def _rss_mib() -> int:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS"))
    return int(line.split()[1]) // 1024


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_give_back_returns_freed_pages() -> None:
    """Memory freed in the middle of the heap is returned, not kept by the allocator."""
    blocks = [bytes(600 + i % 3000) for i in range(100_000)]  # about 180 MiB in malloc'd blocks
    kept = blocks[::8]
    del blocks
    before = _rss_mib()
    assert memory.give_back()
    assert _rss_mib() < before - 50
    assert len(kept) == 12_500


async def test_the_background_task_runs_and_stops() -> None:
    task = asyncio.create_task(memory.keep_giving_back(every=0.01))
    await asyncio.sleep(0.05)
    assert not task.done(), "it keeps running"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
