"""Remember which inbound updates were handled, so that a redelivered one is not answered again."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ProcessedUpdate


async def mark_processed(session: AsyncSession, key: bytes, *, now: dt.datetime) -> bool:
    """Record ``key`` in this transaction; False when it was already recorded (a redelivery).

    On PostgreSQL a concurrent transaction inserting the same key waits for this one, then
    sees the conflict: the update is handled once even when two workers receive it.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(ProcessedUpdate).values(key=key, seen_at=now).on_conflict_do_nothing()
    result = await session.execute(statement)
    return bool(getattr(result, "rowcount", 0))


async def forget_processed(session: AsyncSession, *, before: dt.datetime) -> int:
    """Delete records of updates handled before ``before``."""
    result = await session.execute(delete(ProcessedUpdate).where(ProcessedUpdate.seen_at < before))
    return int(getattr(result, "rowcount", 0))
