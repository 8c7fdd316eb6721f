"""The counsellor chat's use cases (counselling/cases.py) on a real database, SQLite and PostgreSQL:
scope, claiming, who reads a transcript, masking, hand-over, close, off duty, expiry, audit."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.bootstrap import Services
from bot.clock import FixedClock
from counselling import cases
from counselling.cases import Counsellor, Reason, Refused
from content.masking import PHONE_MASK
from storage import counselling as store
from storage.counselling import CasePerson, CaseState, Sender
from storage.staff import AuditEntry, Role, get_account
from tests.staff_fixtures import PROVINCE_A, WARD_A, WARD_B, add_account

PERSON = CasePerson(pseudonym=b"\x02" * 32, locale="vi")
TYPED = "em sợ lắm, số em 0912345678"


async def counsellor(services: Services, name: str, *, ward: int | None = None, province: int | None = None, role: Role = Role.COUNSELLOR) -> Counsellor:
    account_id = await add_account(services, name, role, ward=ward, province=province)
    async with services.db.transaction() as session:
        account = await get_account(session, account_id)
        assert account is not None
        if role is not Role.COUNSELLOR:
            account.counsels = True
        return cases.counsellor_of(account)


async def open_case(services: Services, *, commune: int = WARD_A, province: int = PROVINCE_A, urgent: bool = False) -> int:
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        opened = await cases.open_for_person(
            session, ring, person=PERSON, commune=commune, province=province, channel="telegram", urgent=urgent,
            now=services.clock.now(),
        )
        return opened.case_id


async def on_duty(services: Services, *people: Counsellor) -> None:
    async with services.db.transaction() as session:
        for person in people:
            await cases.go_on_duty(session, person, now=services.clock.now())


async def handles_seen(services: Services, who: Counsellor) -> list[int]:
    async with services.db.transaction() as session:
        return [view.case_id for view in await cases.visible_cases(session, who, now=services.clock.now())]


async def test_scope_of_the_queue(services: Services) -> None:
    """A commune's counsellor sees its cases only; the province's sees all of it; people who chose
    no commune are seen where the province allows it."""
    lan = await counsellor(services, "tv-lan", ward=WARD_A)
    mai = await counsellor(services, "tv-mai", ward=WARD_B)
    tinh = await counsellor(services, "tv-tinh", province=PROVINCE_A)
    national = await counsellor(services, "tv-admin", role=Role.ADMIN)
    in_a = await open_case(services)
    nowhere = await open_case(services, commune=0, province=0)
    assert await handles_seen(services, lan) == [in_a]
    assert await handles_seen(services, mai) == []
    assert await handles_seen(services, tinh) == [in_a]
    assert sorted(await handles_seen(services, national)) == sorted([in_a, nowhere])
    async with services.db.transaction() as session:
        await store.set_show_unassigned(session, PROVINCE_A, True)
    assert sorted(await handles_seen(services, mai)) == [nowhere]
    assert sorted(await handles_seen(services, lan)) == sorted([in_a, nowhere])


async def test_claim_talk_and_who_reads(services: Services) -> None:
    lan = await counsellor(services, "tv-lan", ward=WARD_A)
    tinh = await counsellor(services, "tv-tinh", province=PROVINCE_A)
    national = await counsellor(services, "tv-admin", role=Role.ADMIN)
    case_id = await open_case(services)
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        with pytest.raises(Refused) as refused:
            await cases.claim(session, ring, lan, case_id, now=services.clock.now())
        assert refused.value.reason is Reason.NOT_ON_DUTY
    await on_duty(services, lan, tinh, national)
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        told = await cases.claim(session, ring, lan, case_id, now=services.clock.now())
        assert told.person == PERSON and told.channel == "telegram"
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        with pytest.raises(Refused):
            await cases.claim(session, ring, tinh, case_id, now=services.clock.now())
        assert await cases.person_says(session, ring, case_id, TYPED, urgent=True, now=services.clock.now())
        back = await cases.counsellor_says(session, ring, lan, case_id, "Mình nghe đây <b>bạn</b>", now=services.clock.now())
        assert back.person == PERSON
        lines = await cases.read(session, ring, lan, case_id)
        assert [(line.sender, line.text) for line in lines] == [
            (Sender.PERSON, f"em sợ lắm, số em {PHONE_MASK}"),
            (Sender.COUNSELLOR, "Mình nghe đây <b>bạn</b>"),
        ]
        assert [line.seq for line in await cases.read(session, ring, lan, case_id, after=1)] == [2]
        for other in (tinh, national):  # nobody but the holder reads it, admins included
            with pytest.raises(Refused):
                await cases.read(session, ring, other, case_id)
            with pytest.raises(Refused):
                await cases.counsellor_says(session, ring, other, case_id, "xin chào", now=services.clock.now())
        assert case_id not in [view.case_id for view in await cases.visible_cases(session, tinh, now=services.clock.now())]
        case = await store.get_case(session, case_id)
        assert case is not None and case.urgent
        for text, reason in (("   ", Reason.EMPTY), ("a" * 2001, Reason.TOO_LONG)):
            with pytest.raises(Refused) as refused:
                await cases.counsellor_says(session, ring, lan, case_id, text, now=services.clock.now())
            assert refused.value.reason is reason
        with pytest.raises(Refused) as refused:
            await cases.read(session, ring, lan, 999999)
        assert refused.value.reason is Reason.NOT_FOUND


async def test_hand_over_and_close(services: Services) -> None:
    lan = await counsellor(services, "tv-lan", ward=WARD_A)
    tinh = await counsellor(services, "tv-tinh", province=PROVINCE_A)
    mai = await counsellor(services, "tv-mai", ward=WARD_B)
    await on_duty(services, lan, tinh, mai)
    case_id = await open_case(services)
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        await cases.claim(session, ring, lan, case_id, now=services.clock.now())
        await cases.person_says(session, ring, case_id, TYPED, urgent=False, now=services.clock.now())
        assert [name for _, name in await cases.colleagues(session, lan, case_id)] == ["tv-tinh"]
        with pytest.raises(Refused) as refused:
            await cases.hand_over(session, lan, case_id, mai.account_id, now=services.clock.now())
        assert refused.value.reason is Reason.BAD_TARGET
        await cases.hand_over(session, lan, case_id, tinh.account_id, now=services.clock.now())
        with pytest.raises(Refused):
            await cases.read(session, ring, lan, case_id)
        assert [line.text for line in await cases.read(session, ring, tinh, case_id)] == [f"em sợ lắm, số em {PHONE_MASK}"]
        with pytest.raises(Refused) as refused:
            await cases.close(session, ring, tinh, case_id, "ghi chú về người này", now=services.clock.now())
        assert refused.value.reason is Reason.BAD_OUTCOME
        with pytest.raises(Refused):
            await cases.close(session, ring, tinh, case_id, "expired", now=services.clock.now())
        closed = await cases.close(session, ring, tinh, case_id, "referral", now=services.clock.now())
        assert closed.person == PERSON and closed.commune == WARD_A and closed.outcome.value == "referral"
    async with services.db.transaction() as session:
        audit = (await session.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
        case_lines = [(entry.actor, entry.action) for entry in audit if entry.action.startswith("case.")]
        assert case_lines == [
            ("bot", "case.opened"), ("tv-lan", "case.claimed"), ("tv-lan", "case.handed_over"), ("tv-tinh", "case.closed"),
        ]
        for entry in audit:
            assert "0912345678" not in entry.detail and "sợ" not in entry.detail
        case = await store.get_case(session, case_id)
        assert case is not None and case.state == CaseState.CLOSED and case.person is None


async def test_off_duty_returns_cases_to_the_queue(services: Services) -> None:
    lan = await counsellor(services, "tv-lan", ward=WARD_A)
    await on_duty(services, lan)
    case_id = await open_case(services)
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        await cases.claim(session, ring, lan, case_id, now=services.clock.now())
        told = await cases.go_off_duty(session, ring, lan, now=services.clock.now())
        assert [item.case_id for item in told] == [case_id] and told[0].person == PERSON
        case = await store.get_case(session, case_id)
        assert case is not None and case.state == CaseState.WAITING and case.holder_id is None
        assert await cases.waiting_position(session, case_id) == 0


async def test_the_person_ends_it_and_old_cases_expire(services: Services, clock: FixedClock) -> None:
    ended = await open_case(services)
    old = await open_case(services)
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        closed = await cases.end_by_person(session, ring, ended, now=clock.now())
        assert closed is not None and closed.outcome.value == "ended_by_person"
        assert await cases.end_by_person(session, ring, ended, now=clock.now()) is None, "twice is once"
    clock.advance(hours=25)
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        expired = await cases.expire(session, ring, now=clock.now())
        assert [item.case_id for item in expired] == [old]
        with pytest.raises(Refused):
            await cases.person_says(session, ring, old, "còn đó không", urgent=False, now=clock.now())


async def test_queue_position_counts_urgent_first(services: Services, clock: FixedClock) -> None:
    first = await open_case(services)
    clock.advance(minutes=1)
    second = await open_case(services)
    clock.advance(minutes=1)
    urgent = await open_case(services, urgent=True)
    async with services.db.transaction() as session:
        assert [await cases.waiting_position(session, c) for c in (urgent, first, second)] == [0, 1, 2]
