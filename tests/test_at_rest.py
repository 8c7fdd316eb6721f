"""What a copy of the database shows (issue #15 §6): nothing timed to the second for someone
who declined, no holder column whose size or group gives an erased person away, and no daily
counter rows older than the staff overview's trend chart needs."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select, text

from bot.bootstrap import Services
from bot.clock import FixedClock
from bot.maintenance import UPDATE_MEMORY, purge
from bot.runtime import Runtime
from handlers.types import Inbound
from storage.models import Person, ProcessedUpdate


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
