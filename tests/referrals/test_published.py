"""The figures staff see come out of referrals/published.py already protected."""

from __future__ import annotations

import datetime as dt
import random

from bot.bootstrap import Services
from referrals.counters import apply_increments
from referrals.counting import REFERRAL_ISSUED, Increment, Where
from referrals.peers import create_peer_link
from referrals.periods import Period
from referrals.published import overview, peer_link_figures, period_report
from referrals.report import Scope, ScopeKind
from referrals.tables import CellState

BINH_LU, LAI_CHAU = 3390, 12
MARCH = Period.parse("2026-03")
DAY = dt.date(2026, 3, 10)


async def test_an_empty_national_report_is_nothing_to_report(services: Services) -> None:
    """Before anything is counted or any target set, the national report has no row: None, not an error."""
    async with services.db.transaction() as session:
        report = await period_report(
            session, period=MARCH, scope=Scope(ScopeKind.ALL), communes=services.context.communes,
            now=services.clock.now(), pack=services.context.pack,
        )
        commune = await period_report(
            session, period=MARCH, scope=Scope(ScopeKind.COMMUNE, BINH_LU), communes=services.context.communes,
            now=services.clock.now(), pack=services.context.pack,
        )
    assert report is None
    assert commune is not None and [line.code for line in commune.communes] == [BINH_LU]


async def test_a_peer_links_small_counts_are_hidden(services: Services) -> None:
    """One peer link's figures: 3 people reached reads "<5", 12 codes issued read 12."""
    async with services.db.transaction() as session:
        created = await create_peer_link(
            session, services.secrets.pepper, alias="PE 01", commune=BINH_LU, province=LAI_CHAU,
            now=services.clock.now(), rng=random.Random(7),
        )
        where = Where(BINH_LU, LAI_CHAU, "telegram", created.link.code)
        await apply_increments(session, [
            Increment(DAY, where, "reached:m", count=3),
            Increment(DAY, where, REFERRAL_ISSUED, "hiv_testing", count=12),
        ])
    async with services.db.transaction() as session:
        figures = await peer_link_figures(session, code=created.link.code, periods=[MARCH])
    reached, issued, redeemed = figures.cells[0]
    assert reached.state is CellState.SMALL and reached.text(figures.threshold) == "<5"
    assert issued.state is CellState.SHOWN and issued.value == 12
    assert redeemed.state is CellState.SHOWN and redeemed.value == 0


async def test_the_overview_protects_reach_by_channel_against_its_total(services: Services) -> None:
    """A lone small channel would be given back by the total: a second cell is hidden with it."""
    async with services.db.transaction() as session:
        await apply_increments(session, [
            Increment(DAY, Where(BINH_LU, LAI_CHAU, "telegram"), "reached:m", count=20),
            Increment(DAY, Where(BINH_LU, LAI_CHAU, "zalo"), "reached:m", count=2),
        ])
    async with services.db.transaction() as session:
        figures = await overview(
            session, period=MARCH, scope=Scope(ScopeKind.COMMUNE, BINH_LU), months=[MARCH.start],
            communes=services.context.communes, now=services.clock.now(), pack=services.context.pack,
        )
    cells = dict(zip(figures.by_channel.keys, figures.by_channel.cells, strict=True))
    assert cells["zalo"].state is CellState.SMALL
    assert cells["telegram"].hidden or figures.by_channel.total.hidden
    assert figures.report is not None
