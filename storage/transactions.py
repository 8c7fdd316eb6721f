"""One transaction, run again when running it again can succeed.

Every writer of the project (an update in the runtime, the key ring at start, a redemption,
the Zalo token store) meets the same few transient failures, and each used to have its own
loop for them. They are retried here, and only these:

- a racing insert (``IntegrityError``): two workers created the same row; the second attempt
  reads the other one's;
- a data key this worker does not know yet (``UnknownKeyError``): a rotation elsewhere; the key
  ring is read again before the next attempt;
- a deadlock or serialisation failure (PostgreSQL aborts one of two transactions locking the
  same rows in opposite orders, e.g. two codes of one erased person used at once);
- a pooled connection that died meanwhile (the database restarted): the pool dropped it.

A ``DatabaseTimeout`` is never retried: the deadline covers every attempt together.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.crypto import KeyRing, UnknownKeyError
from storage.db import Database

T = TypeVar("T")

DEFAULT_ATTEMPTS = 3
# The longest random pause (seconds) before retrying a deadlock, times the attempt's number.
LOCK_RETRY_PAUSE = 0.05
# PostgreSQL's codes for "run it again": deadlock_detected, serialization_failure.
_RETRY_SQLSTATES = frozenset({"40P01", "40001"})


class KeySource(Protocol):
    """Where a transaction gets its key ring (bot/bootstrap.py's cache, re-read on ``refresh``)."""

    async def get(self, session: AsyncSession, *, refresh: bool = False) -> KeyRing: ...


@dataclass(frozen=True)
class Attempt:
    """One run of the work: its session, the key ring (fresh on every retry), which run it is."""

    session: AsyncSession
    ring: KeyRing
    number: int  # 0 for the first
    last: bool  # no retry follows a failure of this one


def _lock_conflict(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES


def retryable(exc: BaseException) -> bool:
    """A failure that another attempt, on a fresh connection and key ring, can get past."""
    if isinstance(exc, (IntegrityError, UnknownKeyError)):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        return getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES
    return False


async def run_in_transaction(
    db: Database,
    keys: KeySource,
    work: Callable[[Attempt], Awaitable[T]],
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    timeout: float | None = None,
) -> T:
    """Run ``work`` in one committed transaction, at most ``attempts`` times.

    ``timeout`` (seconds) bounds all attempts together (None: only the pool's own limits, for
    maintenance). The key ring is loaded before each attempt and read afresh from the second on,
    so work that met an unknown key id sees the rotated ring. The last failure is raised as is.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    for number in range(attempts):
        last = number == attempts - 1
        left = None if deadline is None else max(0.0, deadline - loop.time())
        try:
            async with db.transaction(timeout=left) as session:
                ring = await keys.get(session, refresh=number > 0)
                return await work(Attempt(session, ring, number, last))
        except Exception as exc:
            if last or not retryable(exc):
                raise
            if _lock_conflict(exc):
                # Two transactions that deadlocked would, retried at once, meet again in the same
                # order: each waits a short random while first, within the deadline.
                pause = random.uniform(0.0, LOCK_RETRY_PAUSE) * (number + 1)
                if deadline is not None:
                    pause = min(pause, max(0.0, deadline - loop.time()))
                await asyncio.sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


__all__ = ["Attempt", "DEFAULT_ATTEMPTS", "KeySource", "retryable", "run_in_transaction"]
