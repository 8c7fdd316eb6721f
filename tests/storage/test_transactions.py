"""The one transaction-with-retry helper (storage/transactions.py)."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError

from bot.bootstrap import Services
from storage.crypto import KeyRing, UnknownKeyError
from storage.persons import load_record, save_record
from storage.transactions import Attempt, retryable, run_in_transaction

PSEUDONYM = b"p" * 32


class _Orig(Exception):
    """A driver error as asyncpg raises it: only its SQLSTATE matters here."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


async def _store_once(services: Services) -> None:
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        await save_record(session, ring, PSEUDONYM, b"first", today=services.clock.now().date())


async def test_a_racing_insert_is_run_again_with_a_fresh_key_ring(services: Services) -> None:
    """It runs the work again after an IntegrityError, and the retry reads the key ring afresh."""
    await _store_once(services)
    seen: list[tuple[int, KeyRing]] = []

    async def work(attempt: Attempt) -> bytes | None:
        seen.append((attempt.number, attempt.ring))
        if attempt.number == 0:
            # The row exists: this insert loses the race, as a second worker's would.
            await save_record(attempt.session, attempt.ring, PSEUDONYM, b"second", today=services.clock.now().date(), new=True)
        return await load_record(attempt.session, attempt.ring, PSEUDONYM)

    assert await run_in_transaction(services.db, services.keys, work) == b"first"
    assert [number for number, _ in seen] == [0, 1]
    assert seen[1][1] is not seen[0][1]  # reloaded, so a rotation elsewhere is seen


async def test_it_gives_up_after_the_last_attempt(services: Services) -> None:
    """The last failure is raised as it is, after exactly ``attempts`` runs, and nothing is kept."""
    await _store_once(services)
    runs: list[bool] = []

    async def work(attempt: Attempt) -> None:
        runs.append(attempt.last)
        await save_record(attempt.session, attempt.ring, PSEUDONYM, b"never", today=services.clock.now().date(), new=True)

    with pytest.raises(IntegrityError):
        await run_in_transaction(services.db, services.keys, work, attempts=2)
    assert runs == [False, True]
    async with services.db.transaction() as session:
        assert await load_record(session, await services.keys.get(session), PSEUDONYM) == b"first"


async def test_other_errors_are_not_retried(services: Services) -> None:
    """A bug is not a transient failure: one run, and the error goes up unchanged."""
    runs = 0

    async def work(attempt: Attempt) -> None:
        nonlocal runs
        runs += 1
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        await run_in_transaction(services.db, services.keys, work)
    assert runs == 1


async def test_at_least_one_attempt(services: Services) -> None:
    async def work(attempt: Attempt) -> None:
        raise AssertionError("not run")

    with pytest.raises(ValueError):
        await run_in_transaction(services.db, services.keys, work, attempts=0)


def test_what_counts_as_transient() -> None:
    """Deadlocks, serialisation failures, lost connections, racing inserts and unknown key ids
    are worth another attempt; other database errors are not."""
    assert retryable(DBAPIError("UPDATE", None, _Orig("40P01")))
    assert retryable(DBAPIError("UPDATE", None, _Orig("40001")))
    assert retryable(DBAPIError("SELECT", None, _Orig("08006"), connection_invalidated=True))
    assert retryable(IntegrityError("INSERT", None, _Orig("23505")))
    assert retryable(UnknownKeyError("key 7"))
    assert not retryable(DBAPIError("SELECT", None, _Orig("42P01")))
    assert not retryable(TimeoutError())


async def test_an_unknown_key_is_read_again_and_the_last_attempt_can_give_up(services: Services) -> None:
    """The Zalo token store's shape: an unknown key id on the first attempt reloads the ring;
    on the last attempt the work treats the value as unreadable instead of failing."""
    seen: list[tuple[int, bool]] = []

    async def work(attempt: Attempt) -> str:
        seen.append((attempt.number, attempt.last))
        try:
            raise UnknownKeyError("a data key made by a rotation elsewhere")
        except UnknownKeyError:
            if not attempt.last:
                raise
            return "start again from the configuration"

    assert await run_in_transaction(services.db, services.keys, work, attempts=2) == "start again from the configuration"
    assert seen == [(0, False), (1, True)]


async def test_a_deadlock_is_retried_after_a_short_pause(services: Services) -> None:
    """Two deadlocked transactions do not retry in lockstep: the next attempt waits a little."""
    import time

    started: list[float] = []

    async def work(attempt: Attempt) -> str:
        started.append(time.monotonic())
        if attempt.number == 0:
            raise DBAPIError("UPDATE", None, _Orig("40P01"))
        return "done"

    assert await run_in_transaction(services.db, services.keys, work) == "done"
    assert len(started) == 2
    # At most LOCK_RETRY_PAUSE for the first retry; no assertion on a lower bound (random).
    assert started[1] - started[0] < 2.0
