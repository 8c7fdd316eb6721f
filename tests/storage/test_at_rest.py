"""What a copy of the database shows (issue #15 §6): nothing timed to the second for someone
who declined, no holder column whose size or group gives an erased person away, and no daily
counter rows older than the staff overview's trend chart needs."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import re
from typing import Any

import pytest

from sqlalchemy import func, inspect, select, text

from bot.bootstrap import Services
from bot.operations import _purge
from bot.clock import FixedClock
from bot.maintenance import purge
from bot.redemption import redeem
from bot.runtime import Runtime
from handlers.types import Inbound
from referrals.counters import daily_sums, month_series
from referrals.housekeeping import UPDATE_MEMORY
from referrals.indicators import Policy
from referrals.peers import add_peer
from referrals.periods import Period
from referrals.reporting import build_report, commune_scope
from referrals.store import Holder
from storage.keys import rotate_keys
from storage.models import Person, ProcessedUpdate
from storage.referral_models import HOLDER_BYTES, Counter, CounterMonthLink, Referral, holder_context
from tests.staff_fixtures import add_account
from tests.support.people import BINH_LU, HERE, LAI_CHAU, get_code, press, totals

pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")


async def test_declining_stores_only_hour_grained_update_keys(
    runtime: Runtime, services: Services, clock: FixedClock
) -> None:
    """A person who declined leaves one 16-byte key per message with the hour it came in, no
    finer; redeliveries are still ignored, and the keys go with the housekeeping."""
    clock.at = clock.at.replace(minute=37, second=12, microsecond=654321)
    for n, (text_, payload) in enumerate([("/start", None), (None, "c:decline"), ("xét nghiệm hiv", None)]):
        replies = await runtime.handle(Inbound("telegram", "decliner", text=text_, payload=payload, update_id=str(n)))
        assert replies
        clock.advance(minutes=9, seconds=7)
    assert await runtime.handle(Inbound("telegram", "decliner", text="xét nghiệm hiv", update_id="2")) == []
    async with services.db.transaction() as session:
        rows = (await session.execute(select(ProcessedUpdate.key, ProcessedUpdate.seen_at))).all()
        assert await session.scalar(select(func.count()).select_from(Person)) == 0
        tables = await session.run_sync(lambda s: s.connection().dialect.get_table_names(s.connection()))
        others = {
            table: await session.scalar(text(f"SELECT count(*) FROM {table}"))  # noqa: S608 - known names
            for table in ("persons", "referrals", "counters", "counter_months")
            if table in tables
        }
    assert len(rows) == 3 and all(len(key) == 16 for key, _ in rows)
    for _, seen in rows:
        assert (seen.minute, seen.second, seen.microsecond) == (0, 0, 0), seen
    assert others == {"persons": 0, "referrals": 0, "counters": 0, "counter_months": 0}
    clock.advance(seconds=(UPDATE_MEMORY + dt.timedelta(hours=1)).total_seconds())
    assert (await purge(services)).forgotten_updates == 3


# --- referral holders: one size, no link between an erased person's codes ---------------------


async def holder_sizes(services: Services) -> dict[str, set[int]]:
    async with services.db.transaction() as session:
        rows = (await session.execute(select(Referral.status, Referral.holder).where(Referral.holder.is_not(None)))).all()
    sizes: dict[str, set[int]] = {}
    for status, holder in rows:
        sizes.setdefault(status, set()).add(len(holder))
    return sizes


async def test_sealed_holders_have_one_size_and_no_group_column(runtime: Runtime, services: Services) -> None:
    """Codes still held, codes of a person who erased with one and with three open codes: every
    sealed holder has the same length, and no column ties an erased person's codes together."""
    await get_code(runtime, "keeps")
    await get_code(runtime, "erases-one")
    for i in range(3):
        await get_code(runtime, "erases-three", accept=i == 0)
    await press(runtime, "erases-one", "p:erase", "p:erase:yes")
    await press(runtime, "erases-three", "p:erase", "p:erase:yes")
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        rows = (await session.scalars(select(Referral))).all()
        columns = await session.run_sync(
            lambda s: {c["name"] for c in inspect(s.connection()).get_columns("referrals")}
        )
    assert len(rows) == 5 and all(row.holder is not None for row in rows)
    assert len({len(row.holder or b"") for row in rows}) == 1, "one size for every holder"
    assert len(rows[0].holder or b"") == HOLDER_BYTES + 33
    assert "holder_group" not in columns
    erased = [row for row in rows if Holder.open(ring, row.holder or b"", row.code_hash).pseudonym is None]
    assert len(erased) == 4
    siblings = {row.code_hash: Holder.open(ring, row.holder or b"", row.code_hash).siblings for row in erased}
    assert sum(1 for found in siblings.values() if not found) == 1, "the lone code has no sibling"
    assert sorted(len(found) for found in siblings.values()) == [0, 2, 2, 2]


async def test_erased_codes_count_once_across_months(runtime: Runtime, services: Services, clock: FixedClock) -> None:
    """Erased in March after being counted connected: three codes used in April count the person
    once for April and never again for the half-year or year; all three are counted as used."""
    clock.at = dt.datetime(2026, 3, 20, 3, 0, tzinfo=dt.UTC)
    first, second, third = [await get_code(runtime, "p1", accept=i == 0) for i in range(3)]
    assert (await redeem(services, first, HERE)).ok  # connected in March, H1 and 2026
    held = [await get_code(runtime, "p1", accept=False)]
    await press(runtime, "p1", "p:erase", "p:erase:yes")
    clock.at = dt.datetime(2026, 4, 3, 3, 0, tzinfo=dt.UTC)
    assert (await redeem(services, second, HERE)).ok
    assert (await redeem(services, third, HERE)).ok
    assert (await redeem(services, held[0], HERE)).ok
    counted = await totals(services, "connected:m", "connected:h", "connected:y", "referral_redeemed")
    assert counted == {"connected:m": 2, "connected:h": 1, "connected:y": 1, "referral_redeemed": 4}


async def test_erased_codes_used_at_once_count_once(runtime: Runtime, services: Services) -> None:
    """Two staff redeeming two codes of one erased person at the same moment count them once."""
    codes_held = [await get_code(runtime, "p1", accept=i == 0) for i in range(3)]
    await press(runtime, "p1", "p:erase", "p:erase:yes")
    results = await asyncio.gather(*(redeem(services, code, HERE) for code in codes_held))
    assert all(result.ok for result in results)
    counted = await totals(services, "connected:m", "connected:y", "referral_redeemed")
    assert counted == {"connected:m": 1, "connected:y": 1, "referral_redeemed": 3}


async def test_rotation_pads_a_holder_sealed_before_padding(
    runtime: Runtime, services: Services, clock: FixedClock
) -> None:
    """A holder sealed in the old, unpadded form gets the one size at the next key rotation."""
    code = await get_code(runtime, "p1")
    pseudonym = services.secrets.pseudonym("telegram", "p1")
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        row = (await session.scalars(select(Referral))).one()
        legacy = json.dumps({"p": pseudonym.hex()}).encode()
        row.holder = ring.seal(legacy, holder_context(row.code_hash))
    assert (await holder_sizes(services))["issued"] == {len(legacy) + 33}
    await rotate_keys(services.db, services.secrets, now=clock.now())
    assert (await holder_sizes(services))["issued"] == {HOLDER_BYTES + 33}
    clock.advance(seconds=61)  # the key ring is re-read
    assert (await redeem(services, code, HERE)).ok
    assert (await totals(services, "connected:m"))["connected:m"] == 1


# --- daily counters: the last two months only ---------------------------------------------------


async def test_old_daily_counters_are_rolled_into_months(
    runtime: Runtime, services: Services, clock: FixedClock, browser_factory: Any
) -> None:
    """Daily rows older than the previous month are summed by month and deleted; every sum the
    overview, the peer pages and the reports read stays the same, and `antam purge` says so."""
    async with services.db.transaction() as session:
        created = await add_peer(session, services.secrets.pepper, alias="Chị Hoa", commune=BINH_LU,
                                 province=LAI_CHAU, today=clock.now().date())
    peer = created.link.code
    clock.at = dt.datetime(2026, 1, 12, 3, 0, tzinfo=dt.UTC)
    await get_code(runtime, "jan-1")
    await runtime.handle(Inbound("zalo", "jan-2", text=f"/start {peer}"))
    await press(runtime, "jan-2", f"c:accept:{peer}", "g:hiv_sti", "t:pep", channel="zalo")
    clock.at = dt.datetime(2026, 2, 20, 3, 0, tzinfo=dt.UTC)
    await get_code(runtime, "feb-1")
    clock.at = dt.datetime(2026, 3, 9, 3, 0, tzinfo=dt.UTC)
    await get_code(runtime, "mar-1")
    before = await figures(services, peer)
    assert before["by channel"][("zalo",)] >= 1 and before["by peer"].get((peer,), 0) >= 1, before
    await add_account(services, "staff-a", ward=BINH_LU)
    staff = browser_factory()
    assert (await staff.login("staff-a")).status == 303
    pages = await staff_pages(staff, created.stats_token)

    out = io.StringIO()
    assert await _purge(services, out) == 0
    assert "from before 2026-02-01 summed into monthly totals and deleted" in out.getvalue()
    async with services.db.transaction() as session:
        oldest = await session.scalar(select(func.min(Counter.day)))
        links = await session.scalar(select(func.count()).select_from(CounterMonthLink))
    assert oldest == dt.date(2026, 2, 20), "February (the previous month) and March stay daily"
    assert links
    assert await figures(services, peer) == before
    assert await staff_pages(staff, created.stats_token) == pages, "the overview and the peer page read the same"
    assert (await purge(services)).rolled_counter_days == 0, "nothing left to roll"
    # A month later February goes too, and still nothing changes.
    clock.at = dt.datetime(2026, 4, 2, 3, 0, tzinfo=dt.UTC)
    assert (await purge(services)).rolled_counter_days > 0
    assert await figures(services, peer) == before


async def staff_pages(staff: Any, token: str) -> list[str]:
    """The overview of 2026, its first half and January, and the peer page, without CSRF tokens."""
    pages = []
    for path in ("/staff/?period=2026", "/staff/?period=2026-H1", "/staff/?period=2026-01", f"/staff/peer/{token}"):
        response, page = await staff.get(path)
        assert response.status == 200, path
        pages.append(re.sub(r'name="csrf" value="[^"]*"', "", page))
    return pages


async def figures(services: Services, peer: str) -> dict[str, Any]:
    """What the staff overview, the peer page and the reports read for 2026, H1 and January."""
    found: dict[str, Any] = {}
    async with services.db.transaction() as session:
        for period in ("2026", "2026-H1", "2026-01"):
            p = Period.parse(period)
            metrics = [f"reached:{p.kind.value}", "referral_issued", "referral_redeemed", "consented"]
            found[f"sums {period}"] = await daily_sums(session, start=p.start, end=p.end, metrics=metrics,
                                                       by=("metric",))
            report = await build_report(session, period=p, scope=commune_scope(services.context.communes, BINH_LU),
                                        communes=services.context.communes, policy=Policy(threshold=1),
                                        now=services.clock.now())
            found[f"report {period}"] = repr((report.people, report.issued, report.redeemed))
        year = Period.parse("2026-H1")
        found["by channel"] = await daily_sums(session, start=year.start, end=year.end, metrics=["reached:h"], by=("channel",))
        found["by peer"] = await daily_sums(session, start=year.start, end=year.end, metrics=["reached:h"], by=("peer",))
        found["peer page"] = await daily_sums(session, start=year.start, end=year.end,
                                              metrics=["reached:h", "referral_issued"], by=("metric",), peer=peer)
        found["trend"] = await month_series(session, months=[dt.date(2026, m, 1) for m in (1, 2, 3)], metric="reached:m")
    return found


async def test_migration_drops_the_group_link_and_keeps_the_codes(database_url: str) -> None:
    """A database at revision 0005 with two grouped codes upgrades to the head: the codes stay,
    the holder_group column and its index are gone, the monthly link table exists."""
    from alembic import command

    from storage.db import Database, alembic_config

    db = Database(database_url)
    try:
        def to_0005(connection: Any) -> None:
            cfg = alembic_config()
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "0005")

        async with db.engine.begin() as conn:
            await conn.run_sync(to_0005)
            for n in (1, 2):
                await conn.execute(
                    text(
                        "INSERT INTO referrals (code_hash, service, service_type, commune, province, channel, peer, "
                        "issued_on, expires_on, status, holder_group) VALUES (:h, 's', 'hiv_testing', 3390, 12, "
                        "'telegram', '', :d, :d, 'issued', :g)"
                    ),
                    {"h": bytes([n]) * 32, "d": dt.date(2026, 3, 2), "g": b"g" * 16},
                )
        await db.upgrade()
        async with db.engine.connect() as conn:
            columns, indexes, tables = await conn.run_sync(
                lambda c: (
                    {col["name"] for col in inspect(c).get_columns("referrals")},
                    {ix["name"] for ix in inspect(c).get_indexes("referrals")},
                    set(inspect(c).get_table_names()),
                )
            )
            kept = await conn.scalar(text("SELECT count(*) FROM referrals"))
        assert kept == 2
        assert "holder_group" not in columns and "ix_referrals_holder_group" not in indexes
        assert "counter_month_links" in tables
    finally:
        await db.dispose()


async def test_sums_by_day_work_for_kept_days_only(services: Services, clock: FixedClock) -> None:
    """Grouping by day or service type still works over the days kept daily, and is refused,
    not silently short, over a month already rolled up."""
    from referrals.counters import apply_increments, roll_up_old_days
    from referrals.counting import Increment, Where

    where = Where(BINH_LU, LAI_CHAU, "telegram", "")
    async with services.db.transaction() as session:
        await apply_increments(session, [Increment(dt.date(2026, 1, 5), where, "referral_issued", "prep"),
                                         Increment(dt.date(2026, 3, 1), where, "referral_issued", "hiv_testing")])
        assert await roll_up_old_days(session, today=dt.date(2026, 3, 2)) == 1
    async with services.db.transaction() as session:
        recent = await daily_sums(session, start=dt.date(2026, 2, 1), end=dt.date(2026, 3, 31),
                                  metrics=["referral_issued"], by=("day", "detail"))
        assert recent == {(dt.date(2026, 3, 1), "hiv_testing"): 1}
        assert await daily_sums(session, start=dt.date(2026, 1, 1), end=dt.date(2026, 6, 30),
                                metrics=["referral_issued"], by=("channel",)) == {("telegram",): 2}
        with pytest.raises(ValueError, match="rolled up"):
            await daily_sums(session, start=dt.date(2026, 1, 1), end=dt.date(2026, 6, 30),
                             metrics=["referral_issued"], by=("detail",))
