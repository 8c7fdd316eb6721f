"""Pieces every channel adapter shares."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable
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
