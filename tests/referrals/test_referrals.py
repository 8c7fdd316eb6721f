"""Referrals and counting through the runtime and storage, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

from sqlalchemy import func, select

from bot.bootstrap import Services
from bot.clock import FixedClock
from bot.maintenance import purge
from bot.redemption import redeem
from referrals.redeeming import MAX_FAILURES, Place, Redemption
from bot.runtime import Runtime
from handlers.types import Inbound
from referrals import codes
from referrals.counters import daily_sums
from referrals.indicators import Policy, set_target
from referrals.peers import add_peer, set_active
from referrals.periods import Period
from referrals.report import Scope, ScopeKind
from referrals.reporting import build_report, commune_scope
from storage.keys import RETIRED_KEY_GRACE, rotate_keys
from storage.models import DataKey
from storage.referral_models import Counter, CounterMonth, Referral
from tests.support.people import BINH_LU, HERE, LAI_CHAU, get_code, press, totals

async def test_issuing_stores_a_hash_and_counts(runtime: Runtime, services: Services) -> None:
    """A code is stored only as a keyed hash, linked to its holder only under seal, and counted."""
    code = await get_code(runtime, "p1")
    async with services.db.transaction() as session:
        row = (await session.scalars(select(Referral))).one()
    assert row.code_hash == codes.code_hash(services.secrets.pepper, codes.normalise(code))
    assert code.replace("-", "").encode() not in row.code_hash
    assert row.holder is not None
    assert services.secrets.pseudonym("telegram", "p1") not in row.holder
    assert (row.commune, row.province, row.service_type, row.channel) == (BINH_LU, LAI_CHAU, "hiv_testing", "telegram")
    assert row.expires_on == dt.date(2026, 3, 31)
    counted = await totals(services, "consented", "reached:m", "reached:h", "reached:y", "referral_issued")
    assert counted == {"consented": 1, "reached:m": 1, "reached:h": 1, "reached:y": 1, "referral_issued": 1}


async def test_a_person_is_reached_once_per_period(runtime: Runtime, services: Services, clock: FixedClock) -> None:
    """However often a person comes back, they count once a month, once a half-year, once a year."""
    await press(runtime, "p1", "c:accept", "t:pep", "t:prep", f"w:{BINH_LU}", "t:sti")
    clock.advance(days=1)
    await press(runtime, "p1", "t:pep")
    clock.advance(days=31)  # April: a new month, same half-year and year
    await press(runtime, "p1", "t:pep")
    counted = await totals(services, "reached:m", "reached:h", "reached:y", "informed:m")
    assert counted == {"reached:m": 2, "reached:h": 1, "reached:y": 1, "informed:m": 2}


async def test_nothing_is_counted_before_consent(runtime: Runtime, services: Services) -> None:
    """A person who has not accepted the notice reads freely and is counted nowhere."""
    await press(runtime, "p1", "t:pep", f"w:{BINH_LU}", "e")
    async with services.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Counter)) == 0


async def test_redeeming_outcomes(runtime: Runtime, services: Services, clock: FixedClock) -> None:
    """A valid code is used once; every other case says why and changes nothing."""
    code = await get_code(runtime, "p1")
    assert (await redeem(services, "xx", HERE)).outcome is Redemption.MALFORMED
    assert (await redeem(services, "ABCD-EFGH", HERE)).outcome is Redemption.UNKNOWN
    assert (await redeem(services, code, Place(commune=3391))).outcome is Redemption.OTHER_PLACE
    typed = code.lower().replace("-", " ").replace("0", "o").replace("1", "l")
    used = await redeem(services, typed, HERE)
    assert used.ok and used.service_type == "hiv_testing" and used.day == dt.date(2026, 3, 2)
    again = await redeem(services, code, HERE)
    assert again.outcome is Redemption.ALREADY_USED and again.day == dt.date(2026, 3, 2)
    assert (await redeem(services, code, Place(province=LAI_CHAU))).outcome is Redemption.ALREADY_USED
    counted = await totals(services, "referral_redeemed", "connected:m", "connected:h", "connected:y")
    assert counted == {"referral_redeemed": 1, "connected:m": 1, "connected:h": 1, "connected:y": 1}
    # The person's list forgets a used code.
    assert "chưa có mã" in (await press(runtime, "p1", "rm"))[0]


async def test_expired_and_cancelled_codes(runtime: Runtime, services: Services, clock: FixedClock) -> None:
    """An expired code and a cancelled code are refused; a provincial service takes any commune's code."""
    first = await get_code(runtime, "p1")
    second = await get_code(runtime, "p1", accept=False)
    await press(runtime, "p1", f"rcy:{codes.normalise(second)}")
    assert (await redeem(services, second, HERE)).outcome is Redemption.CANCELLED
    assert (await totals(services, "referral_cancelled")) == {"referral_cancelled": 1}
    clock.advance(days=30)
    expired = await redeem(services, first, Place(province=LAI_CHAU))
    assert expired.outcome is Redemption.EXPIRED and expired.day == dt.date(2026, 3, 31)


async def test_connected_once_per_period(runtime: Runtime, services: Services, clock: FixedClock) -> None:
    """Two codes used in one month count one person connected; the next month counts the month only."""
    codes_held = [await get_code(runtime, "p1"), await get_code(runtime, "p1", accept=False)]
    third = await get_code(runtime, "p1", accept=False)
    for code in codes_held:
        assert (await redeem(services, code, HERE)).ok
    clock.advance(days=28)  # 30 March → still March
    clock.advance(days=2)  # 1 April
    # A code issued in March is still valid on 1 April? It expires on 31 March; get a fresh one.
    assert (await redeem(services, third, HERE)).outcome is Redemption.EXPIRED
    fresh = await get_code(runtime, "p1", accept=False)
    assert (await redeem(services, fresh, HERE)).ok
    counted = await totals(services, "connected:m", "connected:h", "connected:y", "referral_redeemed")
    assert counted == {"connected:m": 2, "connected:h": 1, "connected:y": 1, "referral_redeemed": 3}


async def test_erasure_keeps_codes_usable_and_counts_once(runtime: Runtime, services: Services) -> None:
    """After erasure the open codes still work, no longer name the person, and count them once."""
    first, second, third = [await get_code(runtime, "p1", accept=i == 0) for i in range(3)]
    assert (await redeem(services, first, HERE)).ok
    before = await totals(services, "reached:m", "referral_issued", "consented")
    await press(runtime, "p1", "p:erase", "p:erase:yes")
    async with services.db.transaction() as session:
        rows = (await session.scalars(select(Referral).where(Referral.status == "issued"))).all()
        ring = await services.keys.get(session)
    pseudonym = services.secrets.pseudonym("telegram", "p1")
    assert len(rows) == 2 and not hasattr(rows[0], "holder_group"), "no column links the two codes"
    for row in rows:
        assert row.holder is not None
        opened = json.loads(ring.open(row.holder, b"referrals.holder:" + row.code_hash))
        assert "p" not in opened and pseudonym.hex() not in json.dumps(opened)
    assert await totals(services, "reached:m", "referral_issued", "consented") == before, "erasure never changes counts"
    assert (await redeem(services, second, HERE)).ok
    assert (await redeem(services, third, HERE)).ok
    counted = await totals(services, "connected:m", "connected:y", "referral_redeemed")
    assert counted == {"connected:m": 1, "connected:y": 1, "referral_redeemed": 3}


async def test_erased_codes_count_once_among_themselves(runtime: Runtime, services: Services) -> None:
    """Two codes of an erased person used in the same month count one person connected."""
    first, second = [await get_code(runtime, "p1", accept=i == 0) for i in range(2)]
    await press(runtime, "p1", "p:erase", "p:erase:yes")
    assert (await redeem(services, first, HERE)).ok
    assert (await redeem(services, second, HERE)).ok
    assert (await totals(services, "connected:m"))["connected:m"] == 1


async def test_failed_attempts_are_throttled(runtime: Runtime, services: Services, clock: FixedClock) -> None:
    """After repeated failures a place must wait, even with a valid code; then it works again."""
    code = await get_code(runtime, "p1")
    for _ in range(MAX_FAILURES):
        assert (await redeem(services, "ZZZZ-ZZZZ", HERE)).outcome is Redemption.UNKNOWN
    blocked = await redeem(services, code, HERE)
    assert blocked.outcome is Redemption.THROTTLED and blocked.retry_after is not None
    assert (await redeem(services, code, Place(commune=3391))).outcome is Redemption.OTHER_PLACE, "another place is not blocked"
    clock.advance(minutes=16)
    assert (await redeem(services, code, HERE)).ok


async def test_key_rotation_reseals_holder_links(runtime: Runtime, services: Services, clock: FixedClock) -> None:
    """Rotation re-seals the referrals' holder links, the old key goes, and counting still works."""
    code = await get_code(runtime, "p1")
    await rotate_keys(services.db, services.secrets, now=clock.now())
    clock.advance(seconds=RETIRED_KEY_GRACE.total_seconds() + 61)
    await purge(services)
    async with services.db.transaction() as session:
        assert [key.id for key in (await session.scalars(select(DataKey))).all()] == [2]
    assert (await redeem(services, code, HERE)).ok
    assert (await totals(services, "connected:m"))["connected:m"] == 1


async def test_purge_unlinks_and_forgets_old_codes(runtime: Runtime, services: Services, clock: FixedClock) -> None:
    """Expired codes lose their holder link at once and are deleted two months later."""
    await get_code(runtime, "p1")
    clock.advance(days=31)
    report = await purge(services)
    assert report.unlinked_referrals == 1
    async with services.db.transaction() as session:
        assert (await session.scalars(select(Referral))).one().holder is None
    clock.advance(days=61)
    assert (await purge(services)).deleted_referrals == 1


async def test_peer_attribution(runtime: Runtime, services: Services) -> None:
    """People arriving through an active link are counted under it (and its commune when they chose none)."""
    async with services.db.transaction() as session:
        created = await add_peer(session, services.secrets.pepper, alias="PE 01", commune=BINH_LU, province=LAI_CHAU, today=dt.date(2026, 3, 1))
        gone = await add_peer(session, services.secrets.pepper, alias="PE 02", commune=BINH_LU, province=LAI_CHAU, today=dt.date(2026, 3, 1))
        await set_active(session, gone.link.code, False)
    await runtime.handle(Inbound("telegram", "a", start_param=created.link.code))
    await press(runtime, "a", f"c:accept:{created.link.code}", "t:pep")
    await press(runtime, "b", f"c:accept:{gone.link.code}", "t:pep")
    await press(runtime, "c", "c:accept:nosuchcode", "t:pep")
    async with services.db.transaction() as session:
        sums = await daily_sums(session, start=dt.date(2026, 1, 1), end=dt.date(2026, 12, 31), metrics=["reached:m"], by=("peer", "commune"))
    assert sums == {(created.link.code, BINH_LU): 1, ("", 0): 2}


async def test_concurrent_updates_lose_no_increment(runtime: Runtime, services: Services) -> None:
    """Many people at once: every increment lands, and one code redeemed twice at once is used once."""
    people = [f"c{i}" for i in range(24)]
    await asyncio.gather(*(press(runtime, person, "c:accept", "t:pep") for person in people))
    assert await totals(services, "consented", "reached:m") == {"consented": 24, "reached:m": 24}
    code = await get_code(runtime, "holder")
    results = await asyncio.gather(*(redeem(services, code, HERE) for _ in range(6)))
    assert sum(result.ok for result in results) == 1
    async with services.db.transaction() as session:
        months = await session.scalar(select(func.sum(CounterMonth.count)))
        days = await session.scalar(select(func.sum(Counter.count)))
    assert months == days, "the monthly roll-up equals the daily counters"


async def test_report_hides_small_cells(runtime: Runtime, services: Services) -> None:
    """A commune's report shows small counts as <5, hides the percentage, and shows larger ones."""
    for i in range(6):
        await press(runtime, f"r{i}", "c:accept", f"w:{BINH_LU}")
    await get_code(runtime, "r0", accept=False)
    async with services.db.transaction() as session:
        await set_target(session, year=2026, commune=BINH_LU, province=LAI_CHAU, indicator="reached",
                         estimate=60, target_percent=80, now=services.clock.now())
        report = await build_report(session, period=Period.parse("2026-H1"), scope=commune_scope(services.context.communes, BINH_LU),
                                    communes=services.context.communes, policy=Policy(), now=services.clock.now(),
                                    pack=services.context.pack)
    assert report.people.body[0][0].shown == 6
    assert report.progress[0][0].percent == 10.0 and report.progress[0][0].target_percent == 80
    assert report.issued.grand_total is not None and report.issued.grand_total.shown is None
    assert report.uptake[0] is None
    everywhere = Scope(ScopeKind.ALL)
    async with services.db.transaction() as session:
        overall = await build_report(session, period=Period.parse("2026"), scope=everywhere,
                                     communes=services.context.communes, policy=Policy(threshold=10),
                                     now=services.clock.now())
    assert overall.people.column_totals is not None and overall.people.column_totals[0].text(10) == "<10"


async def test_migrations_match_the_models(services: Services) -> None:
    """The migrated database has exactly the tables, columns and indexes the models declare."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import storage.channel_secrets  # noqa: F401  (their tables join the metadata)
    import storage.referral_models  # noqa: F401
    from storage.models import Base

    def diff(connection) -> list:  # type: ignore[no-untyped-def]
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with services.db.engine.connect() as connection:
        differences = await connection.run_sync(diff)
    assert differences == []


async def test_an_empty_report_everywhere(services: Services) -> None:
    """With nothing counted anywhere yet, the report for every commune is empty, not an error."""
    async with services.db.transaction() as session:
        report = await build_report(session, period=Period.parse("2026"), scope=Scope(ScopeKind.ALL),
                                    communes=services.context.communes, policy=Policy(), now=services.clock.now())
    assert report.communes == () and report.people.column_totals is not None
    assert [cell.shown for cell in report.people.column_totals] == [0, 0, 0, 0]
