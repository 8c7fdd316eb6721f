"""Retention and housekeeping, run by `antam purge`, and by `antam run` every hour.

- records of people inactive longer than the retention period are deleted;
- message ids older than Telegram's 48-hour deletion window are dropped from records;
- keys of handled updates are forgotten after a week (redeliveries stop long before);
- expired referral codes lose their holder link, and rows long expired are deleted (reports
  read the counters, not these rows);
- failed-redemption counts of past windows are forgotten;
- daily counters older than the previous month are summed by month (with their channel and
  peer link) and deleted: reports and the staff overview read the monthly rows for them;
- retired data keys no record uses any more are deleted;
- on SQLite, a wipe of the write-ahead log still pending after an erasure is done.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from bot.bootstrap import Services
from bot.clock import today
from bot.record import MESSAGE_LIFETIME, PersonRecord
from referrals.counters import keep_daily_from, roll_up_old_days
from referrals.store import forget_redeem_failures, forget_referrals
from storage.keys import prune_retired_keys
from storage.persons import purge_inactive, rewrite_records
from storage.updates import forget_processed

UPDATE_MEMORY = dt.timedelta(days=7)


@dataclass(frozen=True)
class PurgeReport:
    removed_records: int
    cutoff: dt.date
    deleted_key_ids: list[int]
    kept_key_ids: list[int]
    forgotten_updates: int = 0
    pruned_message_lists: int = 0
    unlinked_referrals: int = 0
    deleted_referrals: int = 0
    rolled_counter_days: int = 0
    counters_kept_from: dt.date | None = None


async def prune_message_ids(services: Services) -> int:
    """Drop expired message ids from records active in the last few days; return how many changed."""
    now = services.clock.now()
    since = today(services.clock) - dt.timedelta(days=MESSAGE_LIFETIME.days + 1)

    def without_old_ids(raw: bytes) -> bytes | None:
        record = PersonRecord.from_bytes(raw)
        fresh = record.fresh(now)
        return fresh.to_bytes() if fresh.messages != record.messages else None

    async with services.db.transaction() as session:
        ring = await services.keys.get(session, refresh=True)
        return await rewrite_records(session, ring, active_since=since, change=without_old_ids)


async def purge(services: Services) -> PurgeReport:
    """Run every housekeeping step once."""
    day = today(services.clock)
    days = services.settings.retention_days
    async with services.db.transaction() as session:
        removed = await purge_inactive(session, today=day, retention_days=days)
        forgotten = await forget_processed(session, before=services.clock.now() - UPDATE_MEMORY)
        unlinked, gone = await forget_referrals(session, today=day)
        rolled = await roll_up_old_days(session, today=day)
        await forget_redeem_failures(session, before=services.clock.now() - dt.timedelta(days=1))
    pruned = await prune_message_ids(services)
    deleted, kept = await prune_retired_keys(services.db, services.secrets, now=services.clock.now())
    if services.db.wipe_pending:
        await services.db.wipe_old_versions()
    return PurgeReport(
        removed, day - dt.timedelta(days=days), deleted, kept, forgotten, pruned, unlinked, gone, rolled,
        keep_daily_from(day),
    )
