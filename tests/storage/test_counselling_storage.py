"""Counselling cases at rest (storage/counselling.py): sealed person links and transcripts, one
claim winning, a close that leaves only day-granular counts, key rotation. SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from bot.bootstrap import Services
from bot.clock import FixedClock
from storage import counselling as c
from storage.crypto import DecryptionError
from storage.keys import rotate_keys
from storage.staff import Role, StaffStorageError, create_account
from tests.staff_fixtures import WARD_A, add_account

PERSON = c.CasePerson(pseudonym=b"\x01" * 32, locale="vi")
SECRET_TEXT = "tôi tên Hoa, số 0912345678"


async def new_case(services: Services, handle: str = "K7Q2", **values: object) -> int:
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        case = await c.open_case(
            session,
            ring,
            handle=handle,
            person=PERSON,
            commune=int(values.get("commune", WARD_A)),  # type: ignore[call-overload]
            province=int(values.get("province", 12)),  # type: ignore[call-overload]
            channel="telegram",
            urgent=bool(values.get("urgent", False)),
            now=services.clock.now(),
        )
        return case.id


async def counsellor(services: Services, name: str) -> int:
    return await add_account(services, name, Role.COUNSELLOR, ward=WARD_A)


async def test_person_link_and_transcript_are_sealed_with_the_case(services: Services) -> None:
    """Nothing readable at rest; a sealed line copied to another case or position does not open."""
    case_id = await new_case(services)
    other_id = await new_case(services, handle="M9XA")
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        case = await c.get_case(session, case_id)
        assert case is not None
        assert await c.append(session, ring, case, c.Sender.PERSON, SECRET_TEXT, now=services.clock.now()) == 1
        assert await c.append(session, ring, case, c.Sender.COUNSELLOR, "Chào bạn", now=services.clock.now()) == 2
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        lines = await c.transcript(session, ring, case_id)
        assert [(line.seq, line.sender, line.text) for line in lines] == [
            (1, c.Sender.PERSON, SECRET_TEXT),
            (2, c.Sender.COUNSELLOR, "Chào bạn"),
        ]
        case = await c.get_case(session, case_id)
        assert case is not None and c.open_person(ring, case) == PERSON
        raw = (await session.execute(text("SELECT sealed FROM counselling_messages ORDER BY seq"))).scalars().all()
        people = (await session.execute(text("SELECT person FROM counselling_cases"))).scalars().all()
        for blob in [*raw, *people]:
            assert b"0912345678" not in bytes(blob) and b"\x01" * 32 not in bytes(blob) and b"Hoa" not in bytes(blob)
        with pytest.raises(DecryptionError):
            ring.open(bytes(raw[0]), c.message_context(case_id, 2))
        with pytest.raises(DecryptionError):
            ring.open(bytes(raw[0]), c.message_context(other_id, 1))


async def test_one_claim_wins(services: Services) -> None:
    """Two counsellors claiming one case at the same moment: exactly one holds it."""
    case_id = await new_case(services)
    first, second = await counsellor(services, "tv-lan"), await counsellor(services, "tv-mai")

    async def claim(holder: int) -> bool:
        async with services.db.transaction() as session:
            return await c.claim(session, case_id, holder, now=services.clock.now())

    results = await asyncio.gather(claim(first), claim(second))
    assert sorted(results) == [False, True]
    async with services.db.transaction() as session:
        case = await c.get_case(session, case_id)
        assert case is not None and case.state == c.CaseState.OPEN
        assert case.holder_id == (first if results[0] else second)


async def test_hand_over_only_from_the_holder(services: Services) -> None:
    case_id = await new_case(services)
    lan, mai, hoa = [await counsellor(services, name) for name in ("tv-lan", "tv-mai", "tv-hoa")]
    async with services.db.transaction() as session:
        assert await c.claim(session, case_id, lan, now=services.clock.now())
        assert not await c.hand_over(session, case_id, mai, hoa), "only the holder hands a case over"
        assert await c.hand_over(session, case_id, lan, mai)
        case = await c.get_case(session, case_id)
        assert case is not None and case.holder_id == mai


async def test_close_keeps_only_day_granular_counts(services: Services, clock: FixedClock) -> None:
    """After the close: no transcript, no person link, no holder; the times keep only their day."""
    case_id = await new_case(services, urgent=True)
    holder = await counsellor(services, "tv-lan")
    clock.advance(minutes=7, seconds=30)
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        assert await c.claim(session, case_id, holder, now=clock.now())
        case = await c.get_case(session, case_id)
        assert case is not None
        await c.append(session, ring, case, c.Sender.PERSON, SECRET_TEXT, now=clock.now())
        await c.close(session, case, c.Outcome.EMOTIONAL_SUPPORT, now=clock.now())
    async with services.db.transaction() as session:
        case = await c.get_case(session, case_id)
        assert case is not None
        assert case.state == c.CaseState.CLOSED and case.outcome == "emotional_support" and case.urgent
        assert case.person is None and case.holder_id is None and case.last_message_at is None
        assert case.waited_seconds == 450
        for moment in (case.opened_at, case.claimed_at, case.closed_at):
            assert moment is not None
            assert (moment.hour, moment.minute, moment.second, moment.microsecond) == (0, 0, 0, 0)
        assert (await session.execute(select(c.CaseMessage))).first() is None
        # The handle is free again for a new case.
        assert not await c.handle_in_use(session, "K7Q2")


async def test_an_open_handle_is_never_given_twice(services: Services) -> None:
    await new_case(services, handle="K7Q2")
    with pytest.raises(IntegrityError):
        await new_case(services, handle="K7Q2")


async def test_queue_is_urgent_first_then_oldest(services: Services, clock: FixedClock) -> None:
    first = await new_case(services, handle="AAAA")
    clock.advance(minutes=1)
    second = await new_case(services, handle="BBBB")
    clock.advance(minutes=1)
    urgent = await new_case(services, handle="CCCC", urgent=True)
    elsewhere = await new_case(services, handle="DDDD", commune=0, province=1)
    async with services.db.transaction() as session:
        waiting = await c.cases(session, states=[c.CaseState.WAITING], provinces=[12])
        assert [case.id for case in waiting] == [urgent, first, second]
        unassigned = await c.cases(session, states=[c.CaseState.WAITING], communes=[0])
        assert [case.id for case in unassigned] == [elsewhere]


async def test_stale_cases_by_last_message(services: Services, clock: FixedClock) -> None:
    case_id = await new_case(services)
    clock.advance(hours=23)
    async with services.db.transaction() as session:
        assert await c.stale_cases(session, before=clock.now() - dt.timedelta(hours=24)) == []
    clock.advance(hours=2)
    async with services.db.transaction() as session:
        assert [case.id for case in await c.stale_cases(session, before=clock.now() - dt.timedelta(hours=24))] == [case_id]


async def test_key_rotation_reseals_open_cases(services: Services) -> None:
    case_id = await new_case(services)
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        case = await c.get_case(session, case_id)
        assert case is not None
        await c.append(session, ring, case, c.Sender.PERSON, SECRET_TEXT, now=services.clock.now())
        old_key = ring.active_id
    report = await rotate_keys(services.db, services.secrets, now=services.clock.now())
    assert report.reencrypted >= 2
    async with services.db.transaction() as session:
        ring = await services.keys.get(session, refresh=True)
        assert ring.active_id != old_key
        assert await c.counselling_using_key(session, old_key) == 0
        assert [line.text for line in await c.transcript(session, ring, case_id)] == [SECRET_TEXT]


async def test_duty_hours_and_settings(services: Services) -> None:
    holder = await counsellor(services, "tv-lan")
    async with services.db.transaction() as session:
        await c.go_on_duty(session, holder, now=services.clock.now())
        await c.go_on_duty(session, holder, now=services.clock.now())  # twice is once
        assert await c.on_duty(session) == {holder}
        await c.set_hours(session, 12, 0, [(0, 8 * 60, 17 * 60), (5, 8 * 60, 11 * 60 + 30)])
        await c.set_hours(session, 12, 0, [(1, 7 * 60, 12 * 60)])  # replaces
        assert [(h.weekday, h.starts, h.ends) for h in await c.hours(session, 12)] == [(1, 420, 720)]
        assert not await c.shows_unassigned(session, 12)
        await c.set_show_unassigned(session, 12, True)
        assert await c.shows_unassigned(session, 12)
        await c.go_off_duty(session, holder)
        assert await c.on_duty(session) == set()


async def test_a_counsellor_account_needs_a_province(services: Services) -> None:
    async with services.db.transaction() as session:
        with pytest.raises(StaffStorageError):
            await create_account(
                session, username="tv-none", role=Role.COUNSELLOR, commune=None, province=None,
                password_hash="x", now=services.clock.now(),
            )
        account = await create_account(
            session, username="tv-tinh", role=Role.COUNSELLOR, commune=None, province=12,
            password_hash="x", now=services.clock.now(),
        )
        assert account.counsels and account.role == "counsellor"


async def test_migration_keeps_accounts_and_admits_counsellors(database_url: str) -> None:
    """A database at 0007 with staff accounts upgrades to the head: the accounts stay, with their
    CHECK constraints; a counsellor needs a province; the role 'nobody' is still refused."""
    from typing import Any

    from alembic import command

    from storage.db import Database, alembic_config

    db = Database(database_url)
    insert = (
        "INSERT INTO staff_accounts (username, role, ward, province, password_hash, must_change_password, "
        "totp_required, failed_logins, active, session_version, created_at{extra}) VALUES "
        "(:u, :r, :w, :p, 'x', false, false, 0, true, 0, :t{value})"
    )
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    try:
        def to_0007(connection: Any) -> None:
            cfg = alembic_config()
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "0007")

        async with db.engine.begin() as conn:
            await conn.run_sync(to_0007)
            await conn.execute(text(insert.format(extra="", value="")), {"u": "lan", "r": "staff", "w": 3390, "p": 12, "t": now})
            await conn.execute(text(insert.format(extra="", value="")), {"u": "admin", "r": "admin", "w": None, "p": None, "t": now})
        await db.upgrade()
        async with db.engine.begin() as conn:
            rows = (await conn.execute(text("SELECT username, role, ward, province, counsels FROM staff_accounts ORDER BY username"))).all()
            assert [tuple(row) for row in rows] == [("admin", "admin", None, None, False), ("lan", "staff", 3390, 12, False)]
            await conn.execute(
                text(insert.format(extra=", counsels", value=", true")), {"u": "tv", "r": "counsellor", "w": None, "p": 12, "t": now}
            )
        for role, province in (("counsellor", None), ("nobody", 12), ("staff", None)):
            with pytest.raises(IntegrityError):
                async with db.engine.begin() as conn:
                    await conn.execute(
                        text(insert.format(extra="", value="")), {"u": f"x-{role}", "r": role, "w": None, "p": province, "t": now}
                    )
    finally:
        await db.dispose()
