"""Counts attributed where people are: what a person was counted for under "Chưa rõ xã" moves to
the commune they then name, once, through the runtime and storage, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import func, select

from bot.bootstrap import Services
from bot.clock import FixedClock, today
from bot.maintenance import purge
from bot.record import PersonRecord
from bot.runtime import Runtime
from handlers.types import Inbound
from referrals.counters import daily_sums, monthly_sums
from referrals.counting import UNIQUE_INDICATORS, UNKNOWN, Marks, Where, attribute, count_unique
from referrals.peers import add_peer
from referrals.periods import Period, PeriodKind, periods_of
from referrals.published import Overview, overview
from referrals.report import INDICATORS, PeriodReport, Scope, ScopeKind
from referrals.tables import CellState
from storage.persons import load_record, save_record
from storage.referral_models import Counter
from tests.support.people import BINH_LU, LAI_CHAU, get_code, press

BA_SAO, DONG_THAP = 30085, 82  # a commune of another province
MARCH, H1, YEAR = periods_of(dt.date(2026, 3, 2))
PERIODS = (MARCH, H1, YEAR)
READ = ("reached", "informed")  # what reading a topic counts


async def by_commune(services: Services, indicator: str, period: Period) -> dict[int, int]:
    """People counted for ``indicator`` in ``period``, per commune (communes at 0 left out)."""
    metric = f"{indicator}:{period.kind.value}"
    async with services.db.transaction() as session:
        sums = await daily_sums(session, start=period.start, end=period.end, metrics=[metric], by=("commune",))
    return {int(str(key[0])): count for key, count in sums.items() if count}


async def in_reports(services: Services, indicator: str, period: Period) -> dict[tuple[int, int], int]:
    """The same from the monthly roll-up reports read: {(commune, province): count}, zeros left out."""
    metric = f"{indicator}:{period.kind.value}"
    async with services.db.transaction() as session:
        sums = await monthly_sums(session, months=period.months(), metrics=[metric])
    found: dict[tuple[int, int], int] = {}
    for (commune, province, _metric, _detail), count in sums.items():
        found[(commune, province)] = found.get((commune, province), 0) + count
    return {key: count for key, count in found.items() if count}


async def everything(services: Services) -> dict[tuple[str, str], dict[int, int]]:
    return {
        (indicator, period.key): await by_commune(services, indicator, period)
        for indicator in UNIQUE_INDICATORS
        for period in PERIODS
    }


async def record_of(services: Services, user: str) -> PersonRecord:
    pseudonym = services.secrets.pseudonym("telegram", user)
    async with services.db.transaction() as session:
        raw = await load_record(session, await services.keys.get(session), pseudonym)
    assert raw is not None
    return PersonRecord.from_bytes(raw)


async def test_reach_moves_to_the_commune_then_named(runtime: Runtime, services: Services) -> None:
    """Read a topic (reached and informed under "Chưa rõ xã"), then choose a commune: the commune
    has the person for the month, half-year and year, unknown none; a second commune moves nothing."""
    await press(runtime, "p1", "c:accept", "t:pep")
    for indicator in READ:
        for period in PERIODS:
            assert await by_commune(services, indicator, period) == {UNKNOWN: 1}
    noted = (await record_of(services, "p1")).marks.unknown
    assert noted == {(i, p.key): dt.date(2026, 3, 2) for i in READ for p in PERIODS}

    await press(runtime, "p1", f"w:{BINH_LU}")
    for indicator in READ:
        for period in PERIODS:
            assert await by_commune(services, indicator, period) == {BINH_LU: 1}, (indicator, period)
            assert await in_reports(services, indicator, period) == {(BINH_LU, LAI_CHAU): 1}
    assert (await record_of(services, "p1")).marks.unknown == {}, "moved once: nothing left to move"
    # The daily row under unknown is back to 0 (its own +1 and the -1), not negative anywhere.
    async with services.db.transaction() as session:
        assert await session.scalar(select(func.min(Counter.count))) == 0

    await press(runtime, "p1", f"w:{BA_SAO}", "t:prep", "s")
    for indicator in READ:
        for period in PERIODS:
            assert await by_commune(services, indicator, period) == {BINH_LU: 1}, "a later commune moves nothing"


async def test_a_typed_commune_name_moves_the_count(runtime: Runtime, services: Services) -> None:
    """Asked for a commune, the person types its name (on the web chat, through Runtime.answer):
    what they were counted for before moves there in that same turn."""
    for payload in ("c:accept", "t:pep", "s"):
        await runtime.answer(Inbound("web", "w1", payload=payload))
    assert await by_commune(services, "informed", YEAR) == {UNKNOWN: 1}
    replies = await runtime.answer(Inbound("web", "w1", text="binh lu", update_id="u-1"))
    assert any("Bình Lư" in reply.text for reply in replies)
    for indicator in READ:
        assert await by_commune(services, indicator, MARCH) == {BINH_LU: 1}
        assert await by_commune(services, indicator, YEAR) == {BINH_LU: 1}
    assert await runtime.answer(Inbound("web", "w1", text="binh lu", update_id="u-1")) == [], "a redelivery"
    assert await by_commune(services, "reached", YEAR) == {BINH_LU: 1}


async def test_a_person_counted_under_a_commune_moves_nowhere(runtime: Runtime, services: Services) -> None:
    """Counted first under a commune, then changing commune: the count stays (the rule is only for unknown)."""
    await press(runtime, "p1", "c:accept", f"w:{BINH_LU}", "t:pep")
    assert (await record_of(services, "p1")).marks.unknown == {}
    await press(runtime, "p1", f"w:{BA_SAO}", "t:sti")
    for period in PERIODS:
        assert await by_commune(services, "reached", period) == {BINH_LU: 1}
        assert await by_commune(services, "informed", period) == {BINH_LU: 1}


async def test_a_peer_links_commune_is_not_unknown(runtime: Runtime, services: Services) -> None:
    """Counted under an active peer link's commune: naming another commune moves nothing."""
    async with services.db.transaction() as session:
        created = await add_peer(
            session, services.secrets.pepper, alias="PE 01", commune=BINH_LU, province=LAI_CHAU, today=dt.date(2026, 3, 1)
        )
    await runtime.handle(Inbound("telegram", "a", start_param=created.link.code))
    await press(runtime, "a", f"c:accept:{created.link.code}", "t:pep", f"w:{BA_SAO}")
    assert (await record_of(services, "a")).marks.unknown == {}
    for period in PERIODS:
        assert await by_commune(services, "reached", period) == {BINH_LU: 1}


async def test_a_code_names_the_commune_and_moves_the_count(runtime: Runtime, services: Services) -> None:
    """Topic first, then a code for a service in Bình Lư: reached, informed and the code all there."""
    await press(runtime, "p1", "c:accept", "t:pep")
    await get_code(runtime, "p1", accept=False)
    for period in PERIODS:
        assert await by_commune(services, "reached", period) == {BINH_LU: 1}
        assert await by_commune(services, "informed", period) == {BINH_LU: 1}


async def test_only_open_periods_move_on_the_days_they_were_counted(
    runtime: Runtime, services: Services, clock: FixedClock
) -> None:
    """Counted in March, again in May, commune named in May after the housekeeping summed March
    into months: May, the half-year and the year move (half-year and year on 2 March, into the
    monthly rows, no daily row comes back); March, closed, keeps its count under unknown."""
    await press(runtime, "p1", "c:accept", "t:pep")
    clock.advance(days=64)  # 5 May: a new month, the same half-year and year
    may = Period.containing(today(clock), PeriodKind.MONTH)
    await press(runtime, "p1", "t:prep")
    assert await by_commune(services, "reached", may) == {UNKNOWN: 1}
    assert (await purge(services)).rolled_counter_days > 0
    before = await everything(services)

    await press(runtime, "p1", f"w:{BINH_LU}")
    assert await by_commune(services, "reached", MARCH) == {UNKNOWN: 1}, "a closed month keeps its figure"
    for indicator in READ:
        for period in (may, H1, YEAR):
            assert await by_commune(services, indicator, period) == {BINH_LU: 1}, (indicator, period)
            assert await in_reports(services, indicator, period) == {(BINH_LU, LAI_CHAU): 1}
    async with services.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Counter).where(Counter.day < dt.date(2026, 4, 1))) == 0
        # The half-year's count moved within March's monthly rows, on the day it was made.
        march = await monthly_sums(session, months=[MARCH.start], metrics=["reached:h"])
    assert {key[:2]: count for key, count in march.items()} == {(UNKNOWN, 0): 0, (BINH_LU, LAI_CHAU): 1}
    # Every period's total is what it was: only the commune changed.
    after = await everything(services)
    assert {k: sum(v.values()) for k, v in after.items()} == {k: sum(v.values()) for k, v in before.items()}
    await purge(services)
    assert await everything(services) == after, "the housekeeping changes no figure"


async def test_the_staff_overview_shows_the_moved_counts(runtime: Runtime, services: Services) -> None:
    """People read a topic, then choose Bình Lư: the published figures (report, reach by channel,
    trend) have them in Bình Lư and 0 under unknown, still protected: four read "<5", five read 5."""
    reached = INDICATORS.index("reached")

    async def figures(period: Period, scope: Scope) -> tuple[Overview, PeriodReport]:
        async with services.db.transaction() as session:
            shown = await overview(
                session, period=period, scope=scope, months=[MARCH.start],
                communes=services.context.communes, now=services.clock.now(), pack=services.context.pack,
            )
        assert shown.report is not None
        return shown, shown.report

    for n in range(4):
        await press(runtime, f"p{n}", "c:accept", "t:pep", f"w:{BINH_LU}")
    _, report = await figures(MARCH, Scope(ScopeKind.ALL))
    rows = {line.code: i for i, line in enumerate(report.communes)}
    small = report.people.body[rows[BINH_LU]][reached]
    assert small.value == 4 and small.state is CellState.SMALL and small.shown is None
    assert report.people.body[rows[UNKNOWN]][reached].shown == 0

    await press(runtime, "p4", "c:accept", "t:pep", f"w:{BINH_LU}")
    for period in PERIODS:
        _, report = await figures(period, Scope(ScopeKind.ALL))
        rows = {line.code: i for i, line in enumerate(report.communes)}
        assert report.people.body[rows[BINH_LU]][reached].shown == 5, period
        assert report.people.body[rows[UNKNOWN]][reached].shown == 0, period
        assert report.people.column_totals is not None and report.people.column_totals[reached].shown == 5
        shown, commune = await figures(period, Scope(ScopeKind.COMMUNE, BINH_LU))
        assert commune.people.body[0][reached].shown == 5
        assert shown.by_channel.total.shown == 5
    assert shown.trend[0][1].shown == 5


async def test_erasure_after_the_move_changes_no_count(runtime: Runtime, services: Services) -> None:
    """Counts moved to the commune stay there when the person erases their data."""
    await press(runtime, "p1", "c:accept", "t:pep", f"w:{BINH_LU}")
    before = await everything(services)
    await press(runtime, "p1", "p:erase", "p:erase:yes")
    assert await everything(services) == before
    await press(runtime, "p1", "c:accept", "t:pep")  # a new person now: counted under unknown again
    assert await by_commune(services, "reached", MARCH) == {BINH_LU: 1, UNKNOWN: 1}


async def test_erasure_before_naming_a_commune_leaves_unknown(runtime: Runtime, services: Services) -> None:
    """Erased before naming a commune: the count stays under unknown and nothing moves later."""
    await press(runtime, "p1", "c:accept", "t:pep", "p:erase", "p:erase:yes")
    await press(runtime, "p1", f"w:{BINH_LU}", "c:accept", f"w:{BINH_LU}")
    assert await by_commune(services, "reached", MARCH) == {UNKNOWN: 1, BINH_LU: 1}
    assert await by_commune(services, "informed", MARCH) == {UNKNOWN: 1}


async def test_a_record_from_before_the_notes_loads_and_moves_nothing(runtime: Runtime, services: Services) -> None:
    """A record written before counts under unknown were noted reads fine: its marks still keep
    the person from counting twice, and nothing is moved (it is not known to be unknown)."""
    await press(runtime, "p1", "c:accept", "t:pep")
    pseudonym = services.secrets.pseudonym("telegram", "p1")
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        raw = await load_record(session, ring, pseudonym)
        assert raw is not None
        data = json.loads(raw)
        del data["k"]["unknown"]  # what the earlier code wrote: the counted periods only
        await save_record(session, ring, pseudonym, json.dumps(data).encode(), today=dt.date(2026, 3, 2))
    old = await record_of(services, "p1")
    assert old.marks.unknown == {} and old.marks.counted["reached"] == {p.key for p in PERIODS}

    replies = await press(runtime, "p1", f"w:{BINH_LU}", "t:prep")
    assert replies
    for indicator in READ:
        for period in PERIODS:
            assert await by_commune(services, indicator, period) == {UNKNOWN: 1}


# --- The marks themselves (pure) ------------------------------------------------------------------


def test_marks_note_counts_under_unknown_and_read_them_back() -> None:
    """Counts under unknown are noted with their day, survive the sealed JSON, and age with the marks."""
    march = dt.date(2026, 3, 2)
    marks, found = count_unique(Marks(), "reached", march, Where(UNKNOWN, 0, "telegram"))
    assert len(found) == 3 and marks.unknown == {("reached", p.key): march for p in PERIODS}
    marks, _ = count_unique(marks, "informed", march, Where(BINH_LU, LAI_CHAU, "telegram"))
    assert set(marks.unknown) == {("reached", p.key) for p in PERIODS}, "counts under a commune are not noted"
    stored = json.loads(json.dumps(marks.to_json()))
    assert Marks.from_json(stored) == marks
    assert set(marks.current(dt.date(2026, 5, 5)).unknown) == {("reached", "2026-H1"), ("reached", "2026")}
    assert marks.current(dt.date(2027, 1, 1)).unknown == {}


def test_unsound_notes_are_dropped() -> None:
    """A note without its mark, with a day outside its period, or malformed is never moved."""
    stored = {
        "reached": ["2026-03", "2026-H1"],
        "unknown": {
            "reached": {"2026-03": "2026-03-02", "2026-H1": "2026-08-01", "2026": "2026-03-02"},
            "informed": {"2026-03": "2026-03-02"},
            "limited": {"2026-03": "2026-03-02"},
            "connected": "2026-03-02",
        },
    }
    assert Marks.from_json(stored).unknown == {("reached", "2026-03"): dt.date(2026, 3, 2)}
    junks: list[object] = [
        [], "x", {"reached": {"2026-03": 5}}, {"reached": {"2026-13": "2026-03-02"}}, {"reached": {"2026-03": "soon"}},
    ]
    for junk in junks:
        assert Marks.from_json({"reached": ["2026-03", "2026-13"], "unknown": junk}).unknown == {}
    assert Marks.from_json({"reached": ["2026-03"]}).unknown == {}, "a record from before the notes"


def test_attribute_moves_each_count_once_on_its_day() -> None:
    """-1 under unknown and +1 under the commune, on the day each count was made; then nothing to move."""
    marks, _ = count_unique(Marks(), "reached", dt.date(2026, 3, 2), Where(UNKNOWN, 0, "web"))
    marks, _ = count_unique(marks.current(dt.date(2026, 5, 5)), "reached", dt.date(2026, 5, 5), Where(UNKNOWN, 0, "web"))
    moved_marks, moved = attribute(marks, BINH_LU, LAI_CHAU, "web")
    assert sorted((i.day, i.where.commune, i.where.province, i.metric, i.count) for i in moved) == [
        (dt.date(2026, 3, 2), UNKNOWN, 0, "reached:h", -1),
        (dt.date(2026, 3, 2), UNKNOWN, 0, "reached:y", -1),
        (dt.date(2026, 3, 2), BINH_LU, LAI_CHAU, "reached:h", 1),
        (dt.date(2026, 3, 2), BINH_LU, LAI_CHAU, "reached:y", 1),
        (dt.date(2026, 5, 5), UNKNOWN, 0, "reached:m", -1),
        (dt.date(2026, 5, 5), BINH_LU, LAI_CHAU, "reached:m", 1),
    ]
    assert all(i.where.channel == "web" and i.where.peer == "" for i in moved)
    assert moved_marks.counted == marks.counted and moved_marks.unknown == {}
    assert attribute(moved_marks, BA_SAO, DONG_THAP, "web") == (moved_marks, [])
    assert attribute(marks, UNKNOWN, 0, "web") == (marks, [])
