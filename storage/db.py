"""The database: an async engine and session factory, SQLite hardening, migrations."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, event, inspect, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
# The newest migration (tests check it is Alembic's head). A database already at it is never
# handed to Alembic, so a worker starting on an up-to-date database does not load it (11 MiB).
HEAD_REVISION = "0008"
# Any constant works; it only has to be the same for every An Tâm process on one database.
_PG_MIGRATION_LOCK = 0x616E74616D
# session.info key: this transaction deleted or replaced personal data (see wipe_after_commit).
_WIPE = "antam.wipe_after_commit"
_WIPE_WAIT_MS = 2000
# A pending wipe is retried after a transaction at most this often, and without waiting: a
# long read in another process must not slow every update down.
_WIPE_RETRY_SECONDS = 10.0

log = logging.getLogger("antam.storage")


class StorageError(Exception):
    """The database cannot be opened or used."""


class DatabaseTimeout(StorageError, TimeoutError):
    """The database did not answer within the transaction's deadline; nothing was committed by us."""


# Used when no timeout is given: the default of ANTAM_DB_TIMEOUT_SECONDS.
DEFAULT_TIMEOUT = 3.0


def insert_for(dialect: str) -> Any:
    """The ``insert`` construct with ON CONFLICT clauses for a dialect: PostgreSQL's, else SQLite's."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def _sqlite_hardening(busy_ms: int) -> Any:
    def _harden_sqlite(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # secure_delete overwrites erased rows instead of leaving them in free pages. The busy
        # timeout is how long a write waits for another process's lock (a CLI command, a
        # backup) before it fails and the person is answered without the database.
        for pragma in (
            "journal_mode=WAL",
            "secure_delete=ON",
            "foreign_keys=ON",
            f"busy_timeout={busy_ms}",
            "synchronous=NORMAL",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()
        # Let SQLAlchemy, not the driver, open transactions (see _begin_immediate).
        dbapi_connection.isolation_level = None

    return _harden_sqlite


def wipe_after_commit(session: AsyncSession) -> None:
    """Note that this transaction erases or replaces personal data (an erasure, a retention
    purge, a re-encryption): once it commits, Database.transaction wipes earlier versions of
    the rows from the SQLite write-ahead log (see Database.wipe_old_versions)."""
    session.info[_WIPE] = True


def _checkpoint_truncate(connection: Connection, wait_ms: int, busy_ms: int) -> tuple[int, int, int]:
    # On the driver's own cursor: through SQLAlchemy the statement would open a transaction
    # (BEGIN IMMEDIATE, see _begin_immediate), and SQLite cannot checkpoint inside one.
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        # Wait briefly for readers in other processes: this runs in the turn of a person's
        # update, and an unfinished wipe is simply retried later.
        cursor.execute(f"PRAGMA busy_timeout={int(wait_ms)}")
        try:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            row = cursor.fetchone()
            assert row is not None, "wal_checkpoint answers one row"
            busy, frames, done = row
        finally:
            cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")  # the connection's usual wait
    finally:
        cursor.close()
    return int(busy), int(frames), int(done)


def _begin_immediate(connection: Connection) -> None:
    # Take the write lock when the transaction starts: two transactions that both read and
    # then write would otherwise deadlock ("database is locked") instead of queueing.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


class _Watchdog:
    """Ends a PostgreSQL transaction that overran its deadline, without waiting on the server.

    Cancelling the task is not enough against a server that stopped answering: the rollback and
    the pool's reset after a cancellation wait on the same silent socket, and a cancel request
    goes unanswered too. So once the transaction holds a connection, the deadline aborts that
    connection's socket (asyncpg's ``terminate``: nothing is sent, every wait on it fails at
    once); SQLAlchemy then sees a lost connection and discards it instead of pooling it again,
    and the server rolls the transaction back when it reads the closed socket. Before that (in
    the pool's queue, or connecting) the task is cancelled, which releases nothing on the server.
    """

    def __init__(self, timeout: float) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.expired = False
        self.driver: Any = None
        self._timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(timeout, self._expire)

    def _expire(self) -> None:
        self.expired = True
        self._timer = None
        if self.driver is not None:
            self.driver.terminate()
        else:
            self.task.cancel()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.driver = None


class Database:
    """An engine and a session factory for one database URL.

    ``timeout`` (seconds) bounds waiting for a pooled connection, connecting, SQLite's wait for
    another process's lock, and every ``transaction(timeout=…)`` as a whole.
    """

    def __init__(self, url: str, *, echo: bool = False, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = url
        self.timeout = timeout
        self.sqlite_path = _sqlite_file(url)
        if self.sqlite_path is not None:
            _prepare_sqlite_file(self.sqlite_path)
        kwargs: dict[str, Any] = {"echo": echo}
        if make_url(url).get_backend_name() == "postgresql":
            # No pre-ping (a round trip per checkout): a connection that died while pooled fails
            # its first statement, the pool drops every connection as old as it, and the
            # runtime runs the update again (Runtime._transaction). A server that accepts but
            # never answers must not hold a caller for asyncpg's default minute of connecting.
            # No statement_timeout on the server: migrations and the nightly purge may
            # rightly run longer than a person may wait; their deadline is transaction(timeout=).
            kwargs.update(pool_size=10, max_overflow=10, pool_timeout=timeout, connect_args={"timeout": timeout})
        elif self.sqlite_path is not None:
            # Transactions take turns (see transaction()); a few connections are enough.
            kwargs.update(pool_size=2, max_overflow=3)
        self._busy_ms = round(timeout * 1000)
        try:
            self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise StorageError(f"cannot use database URL: {exc}") from exc
        if self.sqlite_path is not None or make_url(url).get_backend_name() == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_hardening(self._busy_ms))
            event.listen(self.engine.sync_engine, "begin", _begin_immediate)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite lets one transaction write at a time, and its busy handler polls instead of
        # queueing: under load some waiters starve past busy_timeout. In this process
        # transactions therefore queue here, first come first served, and SQLite's own lock
        # only arbitrates between processes (a CLI command next to the server).
        self._turns = asyncio.Lock() if self.dialect == "sqlite" else None
        # A wipe that could not finish (another process was reading): retried after the next
        # transaction of this process, and by the hourly housekeeping.
        self.wipe_pending = False
        self._wipe_tried_at = 0.0

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self, *, timeout: float | None = None) -> AsyncIterator[AsyncSession]:
        """Open a session and commit on success, roll back on error.

        With ``timeout`` (seconds), the whole of it — waiting for a connection, every statement
        and the commit — must be done by then, or it raises DatabaseTimeout (an unusable
        connection is discarded, never pooled again). Without, only the pool's and connecting's
        own timeouts apply (maintenance and migrations may take longer).

        On SQLite, transactions of this process run one at a time: never open one inside
        another. A transaction marked with wipe_after_commit is followed, still in its turn,
        by wipe_old_versions.
        """
        if self._turns is not None:
            try:
                # A queued transaction gives up at its deadline instead of waiting behind others.
                async with asyncio.timeout(timeout):
                    await self._turns.acquire()
            except TimeoutError as exc:
                raise DatabaseTimeout("waited too long for the database") from exc
            try:
                async with self.sessions() as session, session.begin():
                    yield session
                if session.info.get(_WIPE):
                    await self._wipe_in_turn(_WIPE_WAIT_MS)
                elif self.wipe_pending and time.monotonic() - self._wipe_tried_at >= _WIPE_RETRY_SECONDS:
                    await self._wipe_in_turn(0)
            finally:
                self._turns.release()
            return
        if timeout is None:
            async with self.sessions() as session, session.begin():
                yield session
            return
        watch = _Watchdog(timeout)
        try:
            async with self.sessions() as session:
                async with session.begin():
                    connection = await session.connection()
                    watch.driver = (await connection.get_raw_connection()).driver_connection
                    yield session
                watch.stop()  # committed; closing the session waits on nothing
        except BaseException as exc:
            if not watch.expired:
                raise
            if isinstance(exc, asyncio.CancelledError):
                watch.task.uncancel()  # our own cancellation, turned into the error below
            raise DatabaseTimeout("the database did not answer in time") from exc
        finally:
            watch.stop()

    async def wipe_old_versions(self) -> bool:
        """Leave no earlier version of deleted or replaced rows in any file of the database.

        SQLite in WAL mode appends every changed page to ``-wal`` and copies it into the main
        file only at a checkpoint; ``secure_delete`` zeroes deleted rows in the main file, but
        the log still holds every earlier version of their pages. A TRUNCATE checkpoint copies
        the newest pages into the main file (where the erased rows are zeroed) and cuts the log
        to zero bytes. It waits (busy_timeout) for readers in other processes; if one still
        holds an old snapshot, the wipe stays pending and is tried again, without waiting,
        after a transaction at most every _WIPE_RETRY_SECONDS, and by the housekeeping. Returns whether the log is now empty. PostgreSQL: nothing to do here
        (see the README on its WAL, dead tuples and backups).
        """
        if self._turns is None:
            return True
        async with self._turns:
            return await self._wipe_in_turn(_WIPE_WAIT_MS)

    async def _wipe_in_turn(self, wait_ms: int) -> bool:
        # In this process's turn, so no transaction of ours writes meanwhile.
        self._wipe_tried_at = time.monotonic()
        was_pending = self.wipe_pending
        try:
            async with self.engine.connect() as conn:
                busy, frames, done = await conn.run_sync(_checkpoint_truncate, wait_ms, self._busy_ms)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("could not wipe the write-ahead log: %s", type(exc).__name__)
            self.wipe_pending = True
            return False
        # busy: another connection kept an old snapshot or wrote meanwhile; the log then
        # still holds pages and is not truncated.
        self.wipe_pending = bool(busy) or frames > 0
        if self.wipe_pending and not was_pending:
            log.warning("the write-ahead log could not be wiped yet (another process is using the database); will retry")
        return not self.wipe_pending

    async def has_table(self, name: str) -> bool:
        try:
            async with self.engine.connect() as conn:
                return bool(await conn.run_sync(lambda c: inspect(c).has_table(name)))
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError(f"cannot connect to the database: {_short(exc)}") from exc

    async def upgrade(self) -> None:
        """Apply every pending Alembic migration."""
        try:
            async with self.engine.begin() as conn:
                if self.dialect == "postgresql":
                    # Several workers may start at once; only one migrates at a time.
                    await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                if not await conn.run_sync(_at_head):
                    await conn.run_sync(_upgrade)
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError(f"cannot migrate the database: {_short(exc)}") from exc

    async def ping(self) -> None:
        async with self.transaction(timeout=self.timeout) as session:
            await session.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def _at_head(connection: Connection) -> bool:
    if not inspect(connection).has_table("alembic_version"):
        return False
    return list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars()) == [HEAD_REVISION]


def _upgrade(connection: Connection) -> None:
    from alembic import command

    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


def _prepare_sqlite_file(path: Path) -> None:
    """Create the data folder (0700) and the database file (0600) before SQLite does."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


def _short(exc: BaseException) -> str:
    message = str(getattr(exc, "orig", None) or exc)
    return message.splitlines()[0] if message else type(exc).__name__
