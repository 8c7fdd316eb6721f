"""Pieces every channel adapter shares."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Hashable
from typing import Any
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class KeyedLocks(Generic[K]):
    """One lock per chat or person, so one person's events are answered in the order they came.

    A lock exists only while someone holds or waits for it, so memory does not grow with the
    number of people.
    """

    def __init__(self) -> None:
        self._locks: dict[K, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: K) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class TokenBuckets(Generic[K]):
    """Token buckets by key: ``capacity`` at once, refilled at ``per_second``; bounded in keys,
    and holding only the keys whose bucket is not full again."""

    def __init__(
        self, capacity: float, per_second: float, *, keys: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity, self.per_second, self.keys, self.clock = capacity, per_second, keys, clock
        self._state: OrderedDict[K, tuple[float, float]] = OrderedDict()

    def take(self, key: K) -> float:
        """Take a token: 0 when there was one, else the seconds until there will be (nothing taken)."""
        now = self.clock()
        tokens, since = self._state.pop(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - since) * self.per_second)
        # Within rounding of a whole token counts as one, so a caller that slept exactly
        # the time it was told gets its token.
        wait = 0.0 if tokens >= 1 - 1e-9 else (1 - tokens) / self.per_second
        self._state[key] = (tokens - 1 if wait == 0.0 else tokens, now)
        # Keys are in the order they were last used. A bucket that has refilled is the same as
        # no bucket, so those are forgotten, oldest first: what is held is the keys used in the
        # last few seconds, not every key ever seen (and never more than ``keys``).
        while self._state:
            oldest = next(iter(self._state.values()))
            if len(self._state) <= self.keys and oldest[0] + (now - oldest[1]) * self.per_second < self.capacity:
                break
            self._state.popitem(last=False)
        return wait

    def available(self, key: K) -> float:
        """The tokens ``key`` has now (nothing taken)."""
        now = self.clock()
        tokens, since = self._state.get(key, (self.capacity, now))
        return min(self.capacity, tokens + (now - since) * self.per_second)

    def __len__(self) -> int:
        return len(self._state)


class Pacer(Generic[K]):
    """Waits for a send to be allowed: ``burst`` at once per key, then ``per_second``.

    Telegram's private chats take about one message a second; Zalo's people likewise.
    """

    def __init__(
        self,
        *,
        burst: float = 3.0,
        per_second: float = 1.0,
        chats: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.buckets: TokenBuckets[K] = TokenBuckets(burst, per_second, keys=chats, clock=clock)
        self.sleep = sleep

    async def wait(self, key: K) -> None:
        while (delay := self.buckets.take(key)) > 0:
            await self.sleep(delay)


def coordinate(value: object, bound: float, *, strings: bool = False) -> float | None:
    """A latitude or longitude within ±``bound``, or None; ``strings``: the platform sends text."""
    kinds: tuple[type, ...] = (int, float, str) if strings else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]  # one of kinds
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) and -bound <= number <= bound else None


class Background:
    """Events answered at once and handled afterwards (a webhook that must reply within seconds).

    At most ``limit`` at a time: beyond that, and while stopping, ``spawn`` refuses, so the
    platform is asked to deliver again later instead of memory growing.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.closing = False
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> bool:
        if self.closing or len(self._tasks) >= self.limit:
            work.close()
            return False
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def drain(self) -> None:
        """Wait until every event received so far has been handled."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
