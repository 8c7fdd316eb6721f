"""Wake-ups of the counsellor chat inside one process: the counsellors' pages wait on ``CHANGES``
and re-read the database when it fires (bot/counselling.py). The runtime wakes it after a
person's message changes a case; on PostgreSQL a listener wakes it for changes made by other
workers (storage.counselling.ChangeListener)."""

from __future__ import annotations

import asyncio
import contextlib

COUNSELLING = "counselling"  # the feature a kept reply address is for (bot/record.py)
REFRESH_SECONDS = 5.0


class Changes:
    """Wakes everything in this process that waits for a counselling change."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def wake(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    def mark(self) -> asyncio.Event:
        """Taken before reading the database: ``wait(since=…)`` then also returns at once for a
        change that came while reading (else it would wait for the next one, or the timeout)."""
        return self._event

    async def wait(self, timeout: float = REFRESH_SECONDS, *, since: asyncio.Event | None = None) -> None:
        event = self._event if since is None else since
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)


# The one per process: the runtime wakes it when a person's message changes a case.
CHANGES = Changes()
