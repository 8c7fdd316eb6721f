"""The counsellor chat's use cases: opening a case for a person, the queue, claiming, talking,
handing over, closing — and who may see and do each (issue #18).

Every function runs in the caller's transaction (``session``, ``ring``, ``now`` come in) and
either does all it says or raises ``Refused`` with a reason and changes nothing. What a
counsellor may see of a case: its handle, commune, channel, waiting time and urgent flag while
it waits in their scope; its transcript only while they hold it. Nobody else reads a transcript,
admins included. What the bot must do afterwards (write to the person, update their record) is
returned for the layer above, which holds the channels and the person records.

Scope: a counsellor of a commune sees the cases of that commune; of a province, the province's;
one covering everywhere (a national admin who counsels), every case. Cases of people who chose
no commune (commune and province 0) are seen by counsellors of a province whose setting
``show_unassigned`` is on, and by those covering everywhere.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from counselling import handles, hours
from referrals.localtime import local_day
from content.masking import mask
from storage import counselling as store
from storage.counselling import Case, CasePerson, CaseState, Line, Outcome, Sender
from storage.crypto import KeyRing
from storage.staff import Role, StaffAccount, add_audit, get_account

MAX_COUNSELLOR_CHARS = 2000
HANDLE_ATTEMPTS = 8
TRANSCRIPT_HOURS = 24
MAX_TRANSCRIPT_HOURS = 72


class Reason(StrEnum):
    NOT_FOUND = "not_found"  # also for a case the counsellor may not see: its existence is not told
    NOT_WAITING = "not_waiting"  # someone else claimed it first, or it closed
    NOT_HOLDER = "not_holder"
    NOT_ON_DUTY = "not_on_duty"
    BAD_TARGET = "bad_target"
    BAD_OUTCOME = "bad_outcome"
    EMPTY = "empty"
    TOO_LONG = "too_long"
    CLOSED = "closed"


class Refused(Exception):
    def __init__(self, reason: Reason) -> None:
        super().__init__(reason.value)
        self.reason = reason


class AuditCase(StrEnum):
    OPENED = "case.opened"
    CLAIMED = "case.claimed"
    HANDED_OVER = "case.handed_over"
    RETURNED = "case.returned"  # back to the queue: its counsellor went off duty
    CLOSED = "case.closed"


@dataclass(frozen=True)
class Counsellor:
    """Who is counselling: their account and where they work (from the staff app's viewer)."""

    account_id: int
    username: str
    commune: int | None
    province: int | None
    everywhere: bool = False


@dataclass(frozen=True)
class Opened:
    case_id: int
    handle: str
    ahead: int  # waiting cases before this one in its province's queue


@dataclass(frozen=True)
class CaseView:
    """What a counsellor sees of a case in the queue or in their own list."""

    case_id: int
    handle: str
    state: CaseState
    urgent: bool
    commune: int
    province: int
    channel: str
    waiting_seconds: int
    mine: bool


@dataclass(frozen=True, repr=False)
class ForPerson:
    """Something the bot must now tell the person of a case (through their channel)."""

    case_id: int
    handle: str
    channel: str
    person: CasePerson

    def __repr__(self) -> str:
        return f"ForPerson(case_id={self.case_id}, channel={self.channel!r})"


@dataclass(frozen=True, repr=False)
class Closed(ForPerson):
    outcome: Outcome = Outcome.OTHER
    commune: int = 0
    province: int = 0


def counsellor_of(account: StaffAccount) -> Counsellor:
    """The counselling scope of an account: a commune or a province; everywhere for a national admin."""
    admin = account.role == Role.ADMIN
    return Counsellor(
        account.id, account.username, None if admin else account.commune, account.province,
        everywhere=admin and account.province is None,
    )


def clean_message(text: str) -> str:
    """A counsellor's message as sent: valid text, no control characters, lines kept, trimmed."""
    text = unicodedata.normalize("NFC", text[: MAX_COUNSELLOR_CHARS * 2])
    kept = "".join(ch for ch in text if ch == "\n" or unicodedata.category(ch)[0] != "C")
    lines = [" ".join(line.split()) for line in kept.split("\n")]
    return "\n".join(lines).strip()


def case_name(handle: str) -> str:
    """How a case is named to staff: "#K7Q2" (the page adds "Người")."""
    return f"#{handle}"


def _audit_province(case: Case) -> int | None:
    return case.province or None


def _waited(case: Case, now: dt.datetime) -> int:
    opened = store.aware(case.opened_at)
    assert opened is not None
    return max(0, int((now - opened).total_seconds()))


def in_scope(counsellor: Counsellor, commune: int, province: int, *, show_unassigned: bool) -> bool:
    if counsellor.everywhere:
        return True
    if commune == 0 and province == 0:
        return show_unassigned
    if counsellor.commune is not None:
        return commune == counsellor.commune
    return province == counsellor.province


async def _unassigned_visible(session: AsyncSession, counsellor: Counsellor) -> bool:
    if counsellor.everywhere:
        return True
    return counsellor.province is not None and await store.shows_unassigned(session, counsellor.province)


async def _sees(session: AsyncSession, counsellor: Counsellor, case: Case) -> bool:
    if case.state == CaseState.OPEN:
        return case.holder_id == counsellor.account_id
    if case.state != CaseState.WAITING:
        return False
    show = await _unassigned_visible(session, counsellor)
    return in_scope(counsellor, case.commune, case.province, show_unassigned=show)


async def _visible_case(session: AsyncSession, counsellor: Counsellor, case_id: int, *, lock: bool = False) -> Case:
    case = await store.get_case(session, case_id, for_update=lock)
    if case is None or not await _sees(session, counsellor, case):
        raise Refused(Reason.NOT_FOUND)
    return case


async def _person_of(ring: KeyRing, case: Case) -> CasePerson:
    person = store.open_person(ring, case)
    if person is None:
        raise Refused(Reason.CLOSED)
    return person


# --- the person's side --------------------------------------------------------------------


async def open_for_person(
    session: AsyncSession,
    ring: KeyRing,
    *,
    person: CasePerson,
    commune: int,
    province: int,
    channel: str,
    urgent: bool,
    now: dt.datetime,
) -> Opened:
    """A new waiting case for the person (the caller checked they have none open)."""
    for _ in range(HANDLE_ATTEMPTS):
        handle = handles.new_handle()
        if not await store.handle_in_use(session, handle):
            break
    else:  # about a million handles: eight taken in a row means something is wrong
        raise RuntimeError("no free case handle")
    case = await store.open_case(
        session, ring, handle=handle, person=person, commune=commune, province=province,
        channel=channel, urgent=urgent, now=now,
    )
    await add_audit(session, now=now, actor="bot", action=AuditCase.OPENED, detail=case_name(handle), province=province or None)
    waiting = await store.cases(session, states=[CaseState.WAITING], provinces=[province])
    ahead = sum(1 for other in waiting if other.id != case.id and (other.urgent or not urgent))
    return Opened(case.id, handle, min(ahead, len(waiting) - 1))


async def person_says(
    session: AsyncSession, ring: KeyRing, case_id: int, text: str, *, urgent: bool, now: dt.datetime
) -> bool:
    """Add what the person typed to the transcript, masked; True when something was masked.

    Only the masked text is stored: the number or account the person typed is never kept.
    """
    case = await store.get_case(session, case_id)
    if case is None or case.state == CaseState.CLOSED:
        raise Refused(Reason.CLOSED)
    masked = mask(text)
    await store.append(session, ring, case, Sender.PERSON, masked.text, now=now)
    if urgent and not case.urgent:
        await store.mark_urgent(session, case.id)
    return masked.masked


async def bot_says(session: AsyncSession, ring: KeyRing, case_id: int, text: str, *, now: dt.datetime) -> None:
    """Note in the transcript what the bot answered by itself (the hotlines after a safety message)."""
    case = await store.get_case(session, case_id)
    if case is not None and case.state != CaseState.CLOSED:
        await store.append(session, ring, case, Sender.BOT, text, now=now)


async def end_by_person(session: AsyncSession, ring: KeyRing, case_id: int, *, now: dt.datetime) -> Closed | None:
    """The person ended the chat, quick-exited or erased their data: the case closes now."""
    case = await store.get_case(session, case_id, for_update=True)
    if case is None or case.state == CaseState.CLOSED:
        return None
    return await _close(session, ring, case, Outcome.ENDED_BY_PERSON, actor="bot", now=now)


async def waiting_position(session: AsyncSession, case_id: int) -> int | None:
    """How many waiting cases of the same province come before this one; None when not waiting."""
    case = await store.get_case(session, case_id)
    if case is None or case.state != CaseState.WAITING:
        return None
    waiting = await store.cases(session, states=[CaseState.WAITING], provinces=[case.province])
    return next((index for index, other in enumerate(waiting) if other.id == case.id), 0)


# --- the counsellor's side ----------------------------------------------------------------


async def visible_cases(session: AsyncSession, counsellor: Counsellor, *, now: dt.datetime) -> list[CaseView]:
    """The counsellor's own open cases, then the waiting cases of their scope (urgent first)."""
    mine = await store.cases(session, states=[CaseState.OPEN], holder_id=counsellor.account_id)
    waiting = await store.cases(session, states=[CaseState.WAITING])
    show = await _unassigned_visible(session, counsellor)
    seen = [case for case in waiting if in_scope(counsellor, case.commune, case.province, show_unassigned=show)]
    return [
        CaseView(
            case.id, case.handle, CaseState(case.state), case.urgent, case.commune, case.province, case.channel,
            _waited(case, now), case.holder_id == counsellor.account_id,
        )
        for case in [*mine, *seen]
    ]


async def _on_duty(session: AsyncSession, counsellor: Counsellor) -> None:
    if counsellor.account_id not in await store.on_duty(session):
        raise Refused(Reason.NOT_ON_DUTY)


async def claim(
    session: AsyncSession, ring: KeyRing, counsellor: Counsellor, case_id: int, *, now: dt.datetime
) -> ForPerson:
    """Take a waiting case (the person is to be told); one of two counsellors claiming at once wins."""
    await _on_duty(session, counsellor)
    case = await _visible_case(session, counsellor, case_id, lock=True)
    person = await _person_of(ring, case)
    if case.state != CaseState.WAITING or not await store.claim(session, case.id, counsellor.account_id, now=now):
        raise Refused(Reason.NOT_WAITING)
    await add_audit(
        session, now=now, actor=counsellor.username, action=AuditCase.CLAIMED, detail=case_name(case.handle),
        province=_audit_province(case),
    )
    return ForPerson(case.id, case.handle, case.channel, person)


async def _held(session: AsyncSession, counsellor: Counsellor, case_id: int, *, lock: bool = False) -> Case:
    case = await store.get_case(session, case_id, for_update=lock)
    if case is None or case.state != CaseState.OPEN or case.holder_id != counsellor.account_id:
        # The same answer whoever holds it: a counsellor learns nothing of cases that are not theirs.
        raise Refused(Reason.NOT_FOUND)
    return case


async def holding(session: AsyncSession, ring: KeyRing, counsellor: Counsellor, case_id: int) -> ForPerson:
    """The person of a case the counsellor holds (to write to them in their language)."""
    case = await _held(session, counsellor, case_id)
    return ForPerson(case.id, case.handle, case.channel, await _person_of(ring, case))


async def read(
    session: AsyncSession, ring: KeyRing, counsellor: Counsellor, case_id: int, *, after: int = 0
) -> list[Line]:
    """The transcript since ``after``: only for the counsellor holding the case."""
    case = await _held(session, counsellor, case_id)
    return await store.transcript(session, ring, case.id, after=after)


async def counsellor_says(
    session: AsyncSession, ring: KeyRing, counsellor: Counsellor, case_id: int, text: str, *, now: dt.datetime
) -> ForPerson:
    """Add the counsellor's message to the transcript; the person it must go to."""
    cleaned = clean_message(text)
    if not cleaned:
        raise Refused(Reason.EMPTY)
    if len(cleaned) > MAX_COUNSELLOR_CHARS:
        raise Refused(Reason.TOO_LONG)
    case = await _held(session, counsellor, case_id)
    person = await _person_of(ring, case)
    await store.append(session, ring, case, Sender.COUNSELLOR, cleaned, now=now)
    return ForPerson(case.id, case.handle, case.channel, person)


async def _on_duty_for(session: AsyncSession, case: Case) -> list[StaffAccount]:
    """The active counsellors on duty now whose scope covers ``case``, by account id."""
    found = []
    for account_id in sorted(await store.on_duty(session)):
        account = await get_account(session, account_id)
        if account is None or not account.active or not (account.counsels or account.role == Role.COUNSELLOR):
            continue
        other = counsellor_of(account)
        if in_scope(other, case.commune, case.province, show_unassigned=await _unassigned_visible(session, other)):
            found.append(account)
    return found


async def colleagues(session: AsyncSession, counsellor: Counsellor, case_id: int) -> list[tuple[int, str]]:
    """Who the case can be handed over to: other counsellors on duty whose scope covers it."""
    case = await _held(session, counsellor, case_id)
    return [(a.id, a.username) for a in await _on_duty_for(session, case) if a.id != counsellor.account_id]


async def hand_over(session: AsyncSession, counsellor: Counsellor, case_id: int, to_account: int, *, now: dt.datetime) -> None:
    case = await _held(session, counsellor, case_id, lock=True)
    if to_account not in {account_id for account_id, _ in await colleagues(session, counsellor, case_id)}:
        raise Refused(Reason.BAD_TARGET)
    if not await store.hand_over(session, case.id, counsellor.account_id, to_account):
        raise Refused(Reason.NOT_HOLDER)
    target = await get_account(session, to_account)
    await add_audit(
        session, now=now, actor=counsellor.username, action=AuditCase.HANDED_OVER,
        detail=f"{case_name(case.handle)} → {target.username if target else to_account}", province=_audit_province(case),
    )


async def close(
    session: AsyncSession, ring: KeyRing, counsellor: Counsellor, case_id: int, outcome: str, *, now: dt.datetime
) -> Closed:
    """Close a case the counsellor holds, with an outcome category (never notes)."""
    try:
        chosen = Outcome(outcome)
    except ValueError:
        raise Refused(Reason.BAD_OUTCOME) from None
    if chosen not in store.COUNSELLOR_OUTCOMES:
        raise Refused(Reason.BAD_OUTCOME)
    case = await _held(session, counsellor, case_id, lock=True)
    return await _close(session, ring, case, chosen, actor=counsellor.username, now=now)


async def _close(session: AsyncSession, ring: KeyRing, case: Case, outcome: Outcome, *, actor: str, now: dt.datetime) -> Closed:
    person = store.open_person(ring, case) or CasePerson(b"", "vi")
    closed = Closed(case.id, case.handle, case.channel, person, outcome, case.commune, case.province)
    await store.close(session, case, outcome, now=now, to_day=local_day)
    await add_audit(
        session, now=now, actor=actor, action=AuditCase.CLOSED, detail=f"{case_name(case.handle)} {outcome.value}",
        province=_audit_province(case),
    )
    return closed


async def go_on_duty(session: AsyncSession, counsellor: Counsellor, *, now: dt.datetime) -> None:
    await store.go_on_duty(session, counsellor.account_id, now=now)


async def go_off_duty(session: AsyncSession, ring: KeyRing, counsellor: Counsellor, *, now: dt.datetime) -> list[ForPerson]:
    """Off duty: the counsellor's open cases go back to the queue; their people are to be told."""
    returned = []
    for case in await store.cases(session, states=[CaseState.OPEN], holder_id=counsellor.account_id):
        await store.back_to_queue(session, case.id)
        await add_audit(
            session, now=now, actor=counsellor.username, action=AuditCase.RETURNED, detail=case_name(case.handle),
            province=_audit_province(case),
        )
        person = store.open_person(ring, case)
        if person is not None:
            returned.append(ForPerson(case.id, case.handle, case.channel, person))
    await store.go_off_duty(session, counsellor.account_id)
    return returned


async def expire(session: AsyncSession, ring: KeyRing, *, now: dt.datetime, hours: int = TRANSCRIPT_HOURS) -> list[Closed]:
    """Close every case whose last message is older than ``hours`` (at most 72): its transcript goes."""
    limit = dt.timedelta(hours=max(1, min(hours, MAX_TRANSCRIPT_HOURS)))
    closed = []
    for case in await store.stale_cases(session, before=now - limit):
        locked = await store.get_case(session, case.id, for_update=True)
        if locked is not None and locked.state != CaseState.CLOSED:
            closed.append(await _close(session, ring, locked, Outcome.EXPIRED, actor="bot", now=now))
    return closed


@dataclass(frozen=True)
class Availability:
    """What a person waiting for a case is told: the queue before them, who is on duty for
    their area now, and when the next on-duty hours start (None: no hours set)."""

    ahead: int
    on_duty: int
    hours_now: bool
    next_start: dt.datetime | None


async def availability(session: AsyncSession, case_id: int, *, now: dt.datetime) -> Availability:
    case = await store.get_case(session, case_id)
    if case is None:
        raise Refused(Reason.CLOSED)
    count = len(await _on_duty_for(session, case))
    rows = await store.hours(session, case.province) if case.province else []
    spans = hours.applying(
        [hours.Span(r.weekday, r.starts, r.ends) for r in rows if r.commune == 0],
        [hours.Span(r.weekday, r.starts, r.ends) for r in rows if r.commune == case.commune and case.commune],
    )
    position = await waiting_position(session, case_id)
    return Availability(position or 0, count, hours.is_on(spans, now), hours.next_start(spans, now))


@dataclass(frozen=True)
class CaseCounts:
    """Closed cases of an area and period: by outcome and by channel, and the waits (seconds)
    of those a counsellor claimed. Counts only; the caller protects small cells."""

    by_outcome: dict[str, int]
    by_channel: dict[str, int]
    by_commune: dict[int, int]  # 0: people who chose no commune
    waits: list[int]

    @property
    def total(self) -> int:
        return sum(self.by_outcome.values())

    def median_wait_minutes(self) -> float | None:
        if not self.waits:
            return None
        ordered = sorted(self.waits)
        middle = len(ordered) // 2
        seconds = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
        return round(seconds / 60, 1)


async def case_counts(
    session: AsyncSession, *, since: dt.date, until: dt.date, province: int | None = None, commune: int | None = None
) -> CaseCounts:
    rows = await store.closed_cases(session, since=since, until=until, province=province, commune=commune)
    by_outcome = {outcome.value: 0 for outcome in Outcome}
    by_channel: dict[str, int] = {}
    by_commune: dict[int, int] = {}
    waits = []
    for case in rows:
        by_commune[case.commune] = by_commune.get(case.commune, 0) + 1
        by_outcome[case.outcome or Outcome.OTHER.value] = by_outcome.get(case.outcome or Outcome.OTHER.value, 0) + 1
        by_channel[case.channel] = by_channel.get(case.channel, 0) + 1
        if case.waited_seconds is not None:
            waits.append(case.waited_seconds)
    return CaseCounts(by_outcome, by_channel, by_commune, waits)
