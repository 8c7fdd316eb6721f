"""PostgreSQL notifications between workers: ``notify`` inside a transaction (delivered at
commit, not at all on rollback), ``Listener`` on a connection of its own.

A payload names a kind of change (a channel name, nothing about a person). Notifications are a
way to be quick, never the only way: a listener's connection may drop (the server restarted),
and what is announced while it is away is lost, so every user of them also polls. A dropped
listener connects again by itself, backing off up to RECONNECT_MAX seconds. SQLite has one
process and nothing to listen to: ``notify`` and ``Listener.start`` do nothing there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from storage.db import Database

RECONNECT_FIRST = 0.5
RECONNECT_MAX = 30.0
log = logging.getLogger("antam.storage")


async def notify(session: AsyncSession, channel: str, payload: str = "") -> None:
    """Announce ``payload`` on ``channel`` once this transaction commits (PostgreSQL only)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload})


class Listener:
    """Calls ``on_notify(payload)`` for every notification on ``channel`` (PostgreSQL LISTEN on
    one connection held for it alone)."""

    def __init__(self, db: Database, channel: str, on_notify: Callable[[str], None]) -> None:
        self.db = db
        self.channel = channel
        self.on_notify = on_notify
        self._connection: AsyncConnection | None = None
        self._reconnect: asyncio.Task[None] | None = None
        self._stopped = False

    async def start(self) -> None:
        """Listen from now on; if the server cannot be reached, keep trying in the background."""
        if self.db.dialect != "postgresql":
            return
        self._stopped = False
        try:
            await self._listen()
        except Exception as exc:  # the server is away now: keep trying in the background
            log.warning("could not listen on %s: %s; trying again", self.channel, type(exc).__name__)
            self._reconnect = asyncio.get_running_loop().create_task(self._again())

    async def _listen(self) -> None:
        connection = await self.db.engine.connect()
        try:
            raw = await connection.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            await driver.add_listener(self.channel, self._received)
            driver.add_termination_listener(self._lost)
        except BaseException:
            with contextlib.suppress(Exception):
                await connection.invalidate()
                await connection.close()
            raise
        self._connection = connection

    def _received(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self.on_notify(payload)

    def _lost(self, _connection: Any) -> None:
        if self._stopped or self._reconnect is not None:
            return
        log.warning("lost the connection listening on %s; connecting again", self.channel)
        self._reconnect = asyncio.get_running_loop().create_task(self._again())

    async def _again(self) -> None:
        old, self._connection = self._connection, None
        if old is not None:
            with contextlib.suppress(Exception):
                await old.invalidate()
                await old.close()
        wait = RECONNECT_FIRST
        try:
            while not self._stopped:
                try:
                    await self._listen()
                except Exception as exc:  # the server is still away
                    log.warning("could not listen on %s yet: %s", self.channel, type(exc).__name__)
                    await asyncio.sleep(wait)
                    wait = min(RECONNECT_MAX, wait * 2)
                    continue
                # Whatever was announced while away was lost: let the caller look once.
                self.on_notify("")
                return
        finally:
            self._reconnect = None

    async def stop(self) -> None:
        self._stopped = True
        if self._reconnect is not None:
            self._reconnect.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect
            self._reconnect = None
        if self._connection is not None:
            connection, self._connection = self._connection, None
            with contextlib.suppress(Exception):  # a server already gone: nothing left to close cleanly
                await connection.invalidate()
                await connection.close()
