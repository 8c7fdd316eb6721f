"""The per-person record: load, save and erase one sealed record by pseudonym."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.crypto import KeyRing
from storage.models import Person


def record_context(pseudonym: bytes) -> bytes:
    """Associated data binding a sealed record to its row."""
    return b"persons.record:" + pseudonym


async def load_record(
    session: AsyncSession, ring: KeyRing, pseudonym: bytes, *, lock: bool = True
) -> bytes | None:
    """Return the opened record of a person, or None when nothing is stored."""
    query = select(Person).where(Person.pseudonym == pseudonym)
    if lock:
        query = query.with_for_update()
    person = await session.scalar(query)
    if person is None:
        return None
    return ring.open(person.record, record_context(pseudonym))


async def save_record(
    session: AsyncSession, ring: KeyRing, pseudonym: bytes, record: bytes, *, today: dt.date
) -> None:
    """Seal and store a person's record, marking them active today."""
    sealed = ring.seal(record, record_context(pseudonym))
    person = await session.get(Person, pseudonym)
    if person is None:
        session.add(Person(pseudonym=pseudonym, last_active_on=today, record=sealed))
    else:
        person.record = sealed
        person.last_active_on = today
    await session.flush()


async def erase_person(session: AsyncSession, pseudonym: bytes) -> bool:
    """Delete everything stored under a pseudonym; return whether anything was there."""
    result = await session.execute(delete(Person).where(Person.pseudonym == pseudonym))
    return bool(getattr(result, "rowcount", 0))


async def purge_inactive(session: AsyncSession, *, today: dt.date, retention_days: int) -> int:
    """Delete the records of people inactive for more than ``retention_days``."""
    cutoff = today - dt.timedelta(days=retention_days)
    result = await session.execute(delete(Person).where(Person.last_active_on < cutoff))
    return int(getattr(result, "rowcount", 0))


async def reseal_record(session: AsyncSession, ring: KeyRing, pseudonym: bytes, record: bytes) -> None:
    """Replace a person's record without marking them active (a change they did not make)."""
    person = await session.get(Person, pseudonym)
    if person is None:
        return
    person.record = ring.seal(record, record_context(pseudonym))
    await session.flush()
