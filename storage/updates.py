"""Remember which inbound updates were handled, so that a redelivered one is not answered again."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import insert_for
from storage.models import ProcessedUpdate

_TABLE = cast(Table, ProcessedUpdate.__table__)
# A handled update is kept with the hour it came in, not the microsecond: for someone who
# declined the notice these keys are all that is stored, and a precise time would let a
# database copy line their messages up with a platform's own logs.


def coarse(now: dt.datetime) -> dt.datetime:
    """``now`` cut down to the start of its hour."""
    return now.replace(minute=0, second=0, microsecond=0)


@functools.cache
def _insert(dialect: str) -> Any:
    """INSERT … ON CONFLICT DO NOTHING, built once per dialect: it runs on every update."""
    statement = insert_for(dialect)(_TABLE).values(key=bindparam("key"), seen_at=bindparam("seen_at"))
    return statement.on_conflict_do_nothing()


async def mark_processed(session: AsyncSession, key: bytes, *, now: dt.datetime) -> bool:
    """Record ``key`` in this transaction, with the hour only; False when it was already
    recorded (a redelivery).

    On PostgreSQL a concurrent transaction inserting the same key waits for this one, then
    sees the conflict: the update is handled once even when two workers receive it.
    """
    connection = await session.connection()
    result = await connection.execute(_insert(connection.dialect.name), {"key": key, "seen_at": coarse(now)})
    return bool(result.rowcount)


async def forget_processed(session: AsyncSession, *, before: dt.datetime) -> int:
    """Delete records of updates handled before ``before``."""
    result = await session.execute(delete(ProcessedUpdate).where(ProcessedUpdate.seen_at < before))
    return int(getattr(result, "rowcount", 0))
