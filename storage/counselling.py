"""Counselling cases: a person talking to a counsellor, without the counsellor learning who
the person is (issue #18; docs/architecture.md, "Counsellor chat").

What a case row keeps in plain columns is what the counts need and nothing that names a person:
its handle ("K7Q2", shown as "Người #K7Q2"), state, urgent flag, commune and province (0 when
the person chose none), channel, when it was opened, claimed and closed, how long the person
waited, the outcome category, and which counsellor holds it while it is open. Closing a case
cuts its times to the day and forgets the holder.

Two things are sealed, and both go when the case closes:
- the person link (``CasePerson``: pseudonym and locale), sealed with the case id as associated
  data, so the bot can find the person's record (which keeps their reply address while the case
  is open), write to them and update the record at the close;
- the transcript (``counselling_messages``), one row per message, each sealed with the case id
  and its sequence number as associated data: a row copied to another case or place does not
  open. It exists only while the case is open, at the latest ``transcript_hours`` after its last
  message (``expire``).

Nothing here decides who may see what: that is the use-case layer's (counselling/).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from storage.crypto import KeyRing, sealed_key_id
from storage.db import Database, wipe_after_commit
from storage.models import Base, SealedBytes, sealed_with_key
from storage.notify import Listener, notify


class CaseState(StrEnum):
    WAITING = "waiting"  # in the queue, no counsellor yet
    OPEN = "open"  # a counsellor holds it
    CLOSED = "closed"


class Sender(StrEnum):
    PERSON = "person"
    COUNSELLOR = "counsellor"
    BOT = "bot"  # what the bot itself answered during the case (a safety message's hotlines)


class Outcome(StrEnum):
    """What a counsellor says a closed case was: a category, never notes about the person."""

    INFORMATION = "information"
    REFERRAL = "referral"
    EMOTIONAL_SUPPORT = "emotional_support"
    SAFETY = "safety"
    OTHER = "other"
    # Not chosen by a counsellor: the person ended it, or its transcript reached its age limit.
    ENDED_BY_PERSON = "ended_by_person"
    EXPIRED = "expired"


COUNSELLOR_OUTCOMES = (Outcome.INFORMATION, Outcome.REFERRAL, Outcome.EMOTIONAL_SUPPORT, Outcome.SAFETY, Outcome.OTHER)


class Case(Base):
    __tablename__ = "counselling_cases"
    __table_args__ = (
        CheckConstraint("state IN ('waiting', 'open', 'closed')", name="state"),
        CheckConstraint("state <> 'open' OR holder_id IS NOT NULL", name="open_held"),
        # Two cases open at once never share a handle; a closed case's handle may come back.
        Index(
            "ix_counselling_cases_open_handle",
            "handle",
            unique=True,
            sqlite_where=text("state <> 'closed'"),
            postgresql_where=text("state <> 'closed'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    handle: Mapped[str] = mapped_column(String(4), nullable=False)
    state: Mapped[str] = mapped_column(String(8), nullable=False, index=True)
    urgent: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    commune: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    province: Mapped[int] = mapped_column(Integer, nullable=False, default=0, index=True)
    channel: Mapped[str] = mapped_column(String(32), nullable=False)
    opened_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_message_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    waited_seconds: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str | None] = mapped_column(String(24))
    holder_id: Mapped[int | None] = mapped_column(ForeignKey("staff_accounts.id", ondelete="SET NULL"))
    person: Mapped[bytes | None] = mapped_column(SealedBytes)
    next_seq: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    def __repr__(self) -> str:
        return f"Case(id={self.id!r}, handle={self.handle!r}, state={self.state!r})"


class CaseMessage(Base):
    __tablename__ = "counselling_messages"

    case_id: Mapped[int] = mapped_column(ForeignKey("counselling_cases.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    sender: Mapped[str] = mapped_column(String(12), nullable=False)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    sealed: Mapped[bytes] = mapped_column(SealedBytes, nullable=False)


class OnDuty(Base):
    """A counsellor who is on duty now, since when."""

    __tablename__ = "counselling_duty"

    account_id: Mapped[int] = mapped_column(ForeignKey("staff_accounts.id", ondelete="CASCADE"), primary_key=True)
    since: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class DutyHours(Base):
    """When counsellors are on duty for a province (commune 0) or one commune: one row a span."""

    __tablename__ = "counselling_hours"
    __table_args__ = (
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday"),
        CheckConstraint("starts >= 0 AND starts < ends AND ends <= 1440", name="span"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    province: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    commune: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    weekday: Mapped[int] = mapped_column(Integer, nullable=False)  # 0 Monday … 6 Sunday, Vietnam's days
    starts: Mapped[int] = mapped_column(Integer, nullable=False)  # minutes after midnight, local time
    ends: Mapped[int] = mapped_column(Integer, nullable=False)


class ProvinceSettings(Base):
    """Counselling settings of one province."""

    __tablename__ = "counselling_settings"

    province: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    # Commune counsellors of the province also see cases of people who chose no commune.
    show_unassigned: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


@dataclass(frozen=True, repr=False)
class CasePerson:
    """Who a case is for, as the bot needs it (their record, where the reply address is kept
    while the case is open, and their language); sealed in the case row, never shown to staff."""

    pseudonym: bytes
    locale: str

    def __repr__(self) -> str:  # never print a pseudonym, even in a traceback
        return f"CasePerson(locale={self.locale!r})"


@dataclass(frozen=True)
class Line:
    """One message of a transcript, opened."""

    seq: int
    sender: Sender
    at: dt.datetime
    text: str


def person_context(case_id: int) -> bytes:
    return b"case-person:%d" % case_id


def message_context(case_id: int, seq: int) -> bytes:
    return b"case-message:%d:%d" % (case_id, seq)


def aware(value: dt.datetime | None) -> dt.datetime | None:
    # SQLite hands back naive datetimes; every stored time is UTC.
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _seal_person(ring: KeyRing, case_id: int, person: CasePerson) -> bytes:
    plain = json.dumps({"p": person.pseudonym.hex(), "l": person.locale}, separators=(",", ":"))
    return ring.seal(plain.encode(), person_context(case_id))


def open_person(ring: KeyRing, case: Case) -> CasePerson | None:
    if case.person is None:
        return None
    data = json.loads(ring.open(case.person, person_context(case.id)))
    return CasePerson(bytes.fromhex(data["p"]), str(data["l"]))


async def handle_in_use(session: AsyncSession, handle: str) -> bool:
    query = select(func.count()).select_from(Case).where(Case.handle == handle, Case.state != CaseState.CLOSED)
    return bool(await session.scalar(query))


async def open_case(
    session: AsyncSession,
    ring: KeyRing,
    *,
    handle: str,
    person: CasePerson,
    commune: int,
    province: int,
    channel: str,
    urgent: bool,
    now: dt.datetime,
) -> Case:
    """A new waiting case; the caller checked ``handle`` is free (a race fails the unique index)."""
    case = Case(
        handle=handle,
        state=CaseState.WAITING,
        urgent=urgent,
        commune=commune,
        province=province,
        channel=channel,
        opened_at=now,
        last_message_at=now,
        next_seq=1,
    )
    session.add(case)
    await session.flush()
    case.person = _seal_person(ring, case.id, person)
    await session.flush()
    await announce(session)
    return case


async def get_case(session: AsyncSession, case_id: int, *, for_update: bool = False) -> Case | None:
    query = select(Case).where(Case.id == case_id)
    if for_update:
        query = query.with_for_update()
    return (await session.scalars(query)).first()


async def open_case_by_handle(session: AsyncSession, handle: str) -> Case | None:
    """The case, waiting or open, that has ``handle`` now (a closed one is nobody's)."""
    query = select(Case).where(Case.handle == handle, Case.state != CaseState.CLOSED)
    return (await session.scalars(query)).first()


async def append(
    session: AsyncSession, ring: KeyRing, case: Case, sender: Sender, text_: str, *, now: dt.datetime
) -> int:
    """Add a message to an open or waiting case's transcript; its sequence number.

    The case row is locked first, so two workers adding to one case number in order.
    """
    locked = await get_case(session, case.id, for_update=True)
    if locked is None or locked.state == CaseState.CLOSED:
        raise ValueError("the case is closed")
    seq = locked.next_seq
    locked.next_seq = seq + 1
    locked.last_message_at = now
    session.add(
        CaseMessage(case_id=locked.id, seq=seq, sender=str(sender), at=now, sealed=ring.seal(text_.encode(), message_context(locked.id, seq)))
    )
    await session.flush()
    await announce(session, f"line:{locked.id}")
    return seq


async def transcript(session: AsyncSession, ring: KeyRing, case_id: int, *, after: int = 0, limit: int = 500) -> list[Line]:
    query = (
        select(CaseMessage)
        .where(CaseMessage.case_id == case_id, CaseMessage.seq > after)
        .order_by(CaseMessage.seq)
        .limit(limit)
    )
    lines = []
    for row in (await session.scalars(query)).all():
        opened = ring.open(row.sealed, message_context(row.case_id, row.seq)).decode()
        lines.append(Line(row.seq, Sender(row.sender), aware(row.at) or row.at, opened))
    return lines


async def claim(session: AsyncSession, case_id: int, holder_id: int, *, now: dt.datetime) -> bool:
    """Give a waiting case to ``holder_id``; False when it was not waiting (someone else won)."""
    case = await get_case(session, case_id, for_update=True)
    if case is None or case.state != CaseState.WAITING:
        return False
    opened = aware(case.opened_at)
    assert opened is not None
    case.state = CaseState.OPEN
    case.holder_id = holder_id
    if case.claimed_at is None:  # a case back in the queue keeps its first wait
        case.claimed_at = now
        case.waited_seconds = max(0, int((now - opened).total_seconds()))
    await session.flush()
    await announce(session)
    return True


async def hand_over(session: AsyncSession, case_id: int, from_id: int, to_id: int) -> bool:
    result = await session.execute(
        update(Case)
        .where(Case.id == case_id, Case.state == CaseState.OPEN, Case.holder_id == from_id)
        .values(holder_id=to_id)
    )
    await announce(session)
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def back_to_queue(session: AsyncSession, case_id: int) -> None:
    await session.execute(
        update(Case).where(Case.id == case_id, Case.state == CaseState.OPEN).values(state=CaseState.WAITING, holder_id=None)
    )
    await announce(session)


async def mark_urgent(session: AsyncSession, case_id: int) -> None:
    await session.execute(update(Case).where(Case.id == case_id).values(urgent=True))
    await announce(session)


def _day(value: dt.datetime | None, to_day: Callable[[dt.datetime], dt.date]) -> dt.datetime | None:
    """Only the day of ``value`` (as ``to_day`` names it: Vietnam's), kept as midnight UTC of it."""
    if value is None:
        return None
    moment = aware(value)
    assert moment is not None
    return dt.datetime.combine(to_day(moment), dt.time(), dt.UTC)


def _utc_day(moment: dt.datetime) -> dt.date:
    return moment.astimezone(dt.UTC).date()


async def close(
    session: AsyncSession,
    case: Case,
    outcome: Outcome,
    *,
    now: dt.datetime,
    to_day: Callable[[dt.datetime], dt.date] = _utc_day,
) -> None:
    """Close ``case``: its transcript and person link go, its times keep only the day (the
    caller's ``to_day`` says which day an instant belongs to)."""
    await session.execute(delete(CaseMessage).where(CaseMessage.case_id == case.id))
    case.state = CaseState.CLOSED
    case.outcome = str(outcome)
    case.holder_id = None
    case.person = None
    case.last_message_at = None
    case.opened_at = _day(case.opened_at, to_day) or case.opened_at
    case.claimed_at = _day(case.claimed_at, to_day)
    case.closed_at = _day(now, to_day)
    await session.flush()
    await announce(session)
    wipe_after_commit(session)


async def cases(
    session: AsyncSession,
    *,
    states: Sequence[CaseState],
    provinces: Sequence[int] | None = None,
    communes: Sequence[int] | None = None,
    holder_id: int | None = None,
) -> list[Case]:
    """Cases in ``states``, urgent first then oldest first; filters are ANDed, None is any."""
    query = select(Case).where(Case.state.in_([str(s) for s in states]))
    if provinces is not None:
        query = query.where(Case.province.in_(list(provinces)))
    if communes is not None:
        query = query.where(Case.commune.in_(list(communes)))
    if holder_id is not None:
        query = query.where(Case.holder_id == holder_id)
    query = query.order_by(Case.urgent.desc(), Case.opened_at, Case.id)
    return list((await session.scalars(query)).all())


async def stale_cases(session: AsyncSession, *, before: dt.datetime) -> list[Case]:
    """Cases not closed whose last message is older than ``before``."""
    query = select(Case).where(Case.state != CaseState.CLOSED, Case.last_message_at < before)
    return list((await session.scalars(query)).all())


async def go_on_duty(session: AsyncSession, account_id: int, *, now: dt.datetime) -> None:
    if await session.get(OnDuty, account_id) is None:
        session.add(OnDuty(account_id=account_id, since=now))
        await session.flush()


async def go_off_duty(session: AsyncSession, account_id: int) -> None:
    await session.execute(delete(OnDuty).where(OnDuty.account_id == account_id))


async def on_duty(session: AsyncSession) -> set[int]:
    return set((await session.scalars(select(OnDuty.account_id))).all())


async def hours(session: AsyncSession, province: int) -> list[DutyHours]:
    query = select(DutyHours).where(DutyHours.province == province).order_by(DutyHours.commune, DutyHours.weekday, DutyHours.starts)
    return list((await session.scalars(query)).all())


async def set_hours(session: AsyncSession, province: int, commune: int, spans: Sequence[tuple[int, int, int]]) -> None:
    """Replace the hours of a province (commune 0) or a commune with ``spans`` (weekday, starts, ends)."""
    await session.execute(delete(DutyHours).where(DutyHours.province == province, DutyHours.commune == commune))
    for weekday, starts, ends in spans:
        session.add(DutyHours(province=province, commune=commune, weekday=weekday, starts=starts, ends=ends))
    await session.flush()


async def shows_unassigned(session: AsyncSession, province: int) -> bool:
    row = await session.get(ProvinceSettings, province)
    return bool(row is not None and row.show_unassigned)


async def set_show_unassigned(session: AsyncSession, province: int, value: bool) -> None:
    row = await session.get(ProvinceSettings, province)
    if row is None:
        session.add(ProvinceSettings(province=province, show_unassigned=value))
    else:
        row.show_unassigned = value
    await session.flush()


CHANGES = "antam_counselling"


async def announce(session: AsyncSession, note: str = "") -> None:
    """Tell every worker, once this transaction commits, that cases changed (PostgreSQL's
    NOTIFY is delivered at commit, and not at all on rollback); ``note`` says what ("line:12":
    only case 12's transcript; empty: anything). SQLite has one process: the caller wakes its
    own listeners after the commit."""
    await notify(session, CHANGES, note)


async def closed_cases(
    session: AsyncSession,
    *,
    since: dt.date,
    until: dt.date,
    province: int | None = None,
    commune: int | None = None,
) -> list[Case]:
    """Closed cases whose day of closing is in [since, until], of one commune or province (None:
    all): what the counts are made of."""
    start = dt.datetime.combine(since, dt.time(), dt.UTC)
    end = dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), dt.UTC)
    query = select(Case).where(Case.state == CaseState.CLOSED, Case.closed_at >= start, Case.closed_at < end)
    if province is not None:
        query = query.where(Case.province == province)
    if commune is not None:
        query = query.where(Case.commune == commune)
    return list((await session.scalars(query)).all())


async def counselling_using_key(session: AsyncSession, key_id: int) -> int:
    people = select(func.count()).select_from(Case).where(Case.person.is_not(None), sealed_with_key(Case.person, key_id))
    lines = select(func.count()).select_from(CaseMessage).where(sealed_with_key(CaseMessage.sealed, key_id))
    return int(await session.scalar(people) or 0) + int(await session.scalar(lines) or 0)


async def reencrypt_counselling(session: AsyncSession, ring: KeyRing) -> int:
    """Seal open cases' person links and transcripts again under the active key (key rotation)."""
    count = 0
    for case in (await session.scalars(select(Case).where(Case.person.is_not(None)).with_for_update())).all():
        assert case.person is not None
        if sealed_key_id(case.person) != ring.active_id:
            context = person_context(case.id)
            case.person = ring.seal(ring.open(case.person, context), context)
            count += 1
    for row in (await session.scalars(select(CaseMessage).with_for_update())).all():
        if sealed_key_id(row.sealed) != ring.active_id:
            context = message_context(row.case_id, row.seq)
            row.sealed = ring.seal(ring.open(row.sealed, context), context)
            count += 1
    return count


class ChangeListener(Listener):
    """Calls ``on_change`` whenever another worker announces a change (PostgreSQL LISTEN on one
    connection of its own, kept out of the pool; connected again if it drops). On SQLite there
    is one process and nothing to listen to: ``start`` does nothing."""

    def __init__(self, db: Database, on_change: Callable[[str | None], None]) -> None:
        super().__init__(db, CHANGES, lambda payload: on_change(payload or None))
