"""Wake-ups of the counsellor chat inside one process: the counsellors' pages wait on ``CHANGES``
and re-read the database when it fires (bot/counselling.py). The runtime wakes it after a
person's message changes a case; on PostgreSQL a listener wakes it for changes made by other
workers (storage.counselling.ChangeListener)."""

from __future__ import annotations

import asyncio
import contextlib
import weakref

COUNSELLING = "counselling"  # the feature a kept reply address is for (bot/record.py)
REFRESH_SECONDS = 5.0


def line_note(case_id: int) -> str:
    """The note of a change that only added a line to one case's transcript."""
    return f"line:{case_id}"


def lines_only(notes: set[str | None]) -> set[int] | None:
    """The cases whose transcripts alone changed, or None when something else may have (a
    claim, a new case, a close, an unknown change): then everything is read again."""
    cases = set()
    for note in notes:
        kind, _, value = (note or "").partition(":")
        if kind != "line" or not value.isdigit() or len(value) > 12:
            return None
        cases.add(int(value))
    return cases


class Subscription:
    """One waiter's changes since it last looked: each a note (``line_note``) or None (anything)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._notes: set[str | None] = set()

    def _add(self, note: str | None) -> None:
        self._notes.add(note)
        self._event.set()

    async def changes(self, timeout: float = REFRESH_SECONDS) -> set[str | None]:
        """The notes that came since the last call (at once if any), or none after ``timeout``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        notes, self._notes = self._notes, set()
        self._event.clear()
        return notes


class Changes:
    """Wakes everything in this process that waits for a counselling change."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._subscriptions: weakref.WeakSet[Subscription] = weakref.WeakSet()

    def subscribe(self) -> Subscription:
        subscription = Subscription()
        self._subscriptions.add(subscription)
        return subscription

    def wake(self, note: str | None = None) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()
        for subscription in list(self._subscriptions):
            subscription._add(note)

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
