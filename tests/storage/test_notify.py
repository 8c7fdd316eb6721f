"""Notifications between workers (storage/notify.py) and the per-process wake-up of the
counsellors' pages (bot/counselling.py Changes): delivered at commit, not on rollback, heard
again after the listening connection is cut, and never missed while a page reads."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from bot.bootstrap import Services
from bot.changes import Changes
from storage.notify import Listener, notify


async def test_a_change_while_reading_is_not_missed() -> None:
    changes = Changes()
    mark = changes.mark()  # the page starts reading
    changes.wake()  # a change comes meanwhile
    loop = asyncio.get_running_loop()
    started = loop.time()
    await changes.wait(timeout=5.0, since=mark)
    assert loop.time() - started < 1.0, "woken at once, not after the refresh"


async def test_delivered_at_commit_and_heard_again_after_a_cut(services: Services) -> None:
    if services.db.dialect != "postgresql":
        pytest.skip("SQLite has one process: nothing to listen to")
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = Listener(services.db, "antam_test_notify", heard.put_nowait)
    await listener.start()
    try:
        with pytest.raises(RuntimeError):
            async with services.db.transaction() as session:
                await notify(session, "antam_test_notify", "rolled back")
                raise RuntimeError("roll back")
        async with services.db.transaction() as session:
            await notify(session, "antam_test_notify", "telegram")
        assert await asyncio.wait_for(heard.get(), 5) == "telegram", "only the committed one"
        async with services.db.transaction() as session:  # the server drops the listening connection
            await session.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'"
                     " AND pid <> pg_backend_pid() AND datname = current_database()")
            )
        assert await asyncio.wait_for(heard.get(), 10) == "", "told to look once it listens again"
        async with services.db.transaction() as session:
            await notify(session, "antam_test_notify", "again")
        assert await asyncio.wait_for(heard.get(), 5) == "again"
    finally:
        await listener.stop()
