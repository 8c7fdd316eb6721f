"""Property: for random streams of events, the counters equal a brute-force recount.

The recount is a plain model of docs/architecture.md, "Indicators": each person (a new one after erasure) counts once
per month, half-year and year for each indicator; events count once each. A person's counts sit
under the commune they had chosen, or "Chưa rõ xã" (0) until they choose one, when those of the
periods still open move to it. It knows nothing of marks, seals or orphan groups; the real
system, through runtime, storage and redemption, must arrive at the same numbers, per commune.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter as Tally
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.bootstrap import Services
from bot.clock import FixedClock, today
from bot.redemption import redeem
from referrals.redeeming import Place
from bot.runtime import Runtime
from handlers.types import Inbound
from referrals import codes
from referrals.counters import daily_sums
from referrals.periods import Period, periods_of

BINH_LU = 3390
UNKNOWN = 0
ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(["accept", "accept", "topic", "services", "code", "code", "code", "redeem", "redeem", "cancel", "erase", "advance"]),
        st.integers(min_value=0, max_value=2),
    ),
    min_size=1,
    max_size=20,
)


@dataclass
class Code:
    text: str
    holder: tuple[int, int]  # (person, incarnation)
    expires: dt.date
    status: str = "issued"


@dataclass
class Model:
    consented: dict[int, bool] = field(default_factory=dict)
    incarnation: dict[int, int] = field(default_factory=dict)
    # (person, indicator, period) → the commune it was counted under, and the period.
    marks: dict[tuple[tuple[int, int], str, str], tuple[int, Period]] = field(default_factory=dict)
    counts: Tally[str] = field(default_factory=Tally)
    # The unique indicators by (metric, commune).
    places: Tally[tuple[str, int]] = field(default_factory=Tally)
    commune: dict[tuple[int, int], int] = field(default_factory=dict)
    codes: list[Code] = field(default_factory=list)

    def who(self, person: int) -> tuple[int, int]:
        return (person, self.incarnation.get(person, 0))

    def count_unique(self, who: tuple[int, int], indicator: str, day: dt.date, commune: int | None = None) -> None:
        place = self.commune.get(who, UNKNOWN) if commune is None else commune
        for period in periods_of(day):
            if (who, indicator, period.key) not in self.marks:
                self.marks[(who, indicator, period.key)] = (place, period)
                metric = f"{indicator}:{period.kind.value}"
                self.counts[metric] += 1
                self.places[(metric, place)] += 1

    def choose(self, who: tuple[int, int], commune: int, day: dt.date) -> None:
        """The person names a commune: their counts under unknown in open periods move to it."""
        self.commune[who] = commune
        for (person, indicator, key), (place, period) in list(self.marks.items()):
            if person == who and place == UNKNOWN and day in period:
                self.marks[(person, indicator, key)] = (commune, period)
                metric = f"{indicator}:{period.kind.value}"
                self.places[(metric, UNKNOWN)] -= 1
                self.places[(metric, commune)] += 1


UNIQUE_METRICS = [f"{i}:{k}" for i in ("reached", "informed", "connected") for k in "mhy"]


async def _totals(services: Services) -> Tally[str]:
    async with services.db.transaction() as session:
        sums = await daily_sums(
            session,
            start=dt.date(2000, 1, 1),
            end=dt.date(2100, 1, 1),
            metrics=UNIQUE_METRICS + ["consented", "referral_issued", "referral_redeemed", "referral_cancelled"],
            by=("metric",),
        )
    return Tally({str(key[0]): count for key, count in sums.items()})


async def _places(services: Services) -> Tally[tuple[str, int]]:
    async with services.db.transaction() as session:
        sums = await daily_sums(
            session, start=dt.date(2000, 1, 1), end=dt.date(2100, 1, 1), metrics=UNIQUE_METRICS, by=("metric", "commune")
        )
    return Tally({(str(key[0]), int(str(key[1]))): count for key, count in sums.items()})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=ACTIONS)
async def test_counters_equal_a_recount(
    runtime: Runtime, services: Services, clock: FixedClock, actions: list[tuple[str, int]]
) -> None:
    """Whatever people do, in whatever order, the counters equal the brute-force recount."""
    before, before_places = await _totals(services), await _places(services)
    run = uuid.uuid4().hex[:8]
    model = Model()

    async def press(person: int, *payloads: str) -> list[str]:
        texts = []
        for payload in payloads:
            for reply in await runtime.handle(Inbound("web", f"{run}-{person}", payload=payload)):
                texts.append(reply.text)
        return texts

    for action, person in actions:
        day = today(clock)
        who = model.who(person)
        consented = model.consented.get(person, False)
        if action == "accept":
            await press(person, "c:accept")
            if not consented:
                model.consented[person] = True
                model.counts["consented"] += 1
        elif action == "topic":
            await press(person, "t:pep")
            if consented:
                model.count_unique(who, "reached", day)
                model.count_unique(who, "informed", day)
        elif action == "services":
            await press(person, f"w:{BINH_LU}")
            if consented:
                model.choose(who, BINH_LU, day)
                model.count_unique(who, "reached", day)
        elif action == "code":
            shown = "\n".join(await press(person, f"w:{BINH_LU}", "ri:tyt_binh_lu:1"))
            if consented:
                model.choose(who, BINH_LU, day)
                model.count_unique(who, "reached", day)
            if "Mã giới thiệu của bạn: " in shown:
                assert consented
                text = shown.split("Mã giới thiệu của bạn: ")[1][:9]
                model.codes.append(Code(text, who, day + dt.timedelta(days=29)))
                model.counts["referral_issued"] += 1
                model.count_unique(who, "reached", day)
        elif action == "redeem" and model.codes:
            code = model.codes[person % len(model.codes)]
            result = await redeem(services, code.text, Place(commune=BINH_LU))
            valid = code.status == "issued" and code.expires >= day
            assert result.ok == valid, (result, code, day)
            if valid:
                code.status = "redeemed"
                model.counts["referral_redeemed"] += 1
                model.count_unique(code.holder, "connected", day, BINH_LU)
        elif action == "cancel":
            mine = [c for c in model.codes if c.holder == who and c.status == "issued" and c.expires >= day]
            if consented and mine:
                await press(person, f"rcy:{codes.normalise(mine[0].text)}")
                mine[0].status = "cancelled"
                model.counts["referral_cancelled"] += 1
        elif action == "erase":
            await press(person, "p:erase", "p:erase:yes")
            if consented:
                model.consented[person] = False
                model.incarnation[person] = who[1] + 1
        elif action == "advance":
            clock.advance(days={0: 40, 1: 1, 2: 17}[person])
    after = await _totals(services)
    assert after - before == +model.counts
    # Every count under unknown is one this example made (new people), so none of these is negative.
    assert await _places(services) - before_places == +model.places
