"""Retention and housekeeping, the rule behind `antam purge` (and `antam run`, every hour).

- records of people inactive longer than the retention period are deleted;
- records active lately are rewritten by the caller's ``rewrite`` (the runtime's record drops
  message ids older than Telegram's 48-hour deletion window);
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
from collections.abc import Callable
from dataclasses import dataclass

from referrals.counters import keep_daily_from, roll_up_old_days
from referrals.localtime import local_day
from referrals.store import forget_redeem_failures, forget_referrals
from storage.crypto import MasterSecrets
from storage.db import Database
from storage.keys import prune_retired_keys
from storage.persons import purge_inactive, rewrite_records
from storage.transactions import KeySource
from storage.updates import forget_processed

UPDATE_MEMORY = dt.timedelta(days=7)
FAILURE_MEMORY = dt.timedelta(days=1)


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


async def purge(
    db: Database,
    secrets: MasterSecrets,
    keys: KeySource,
    *,
    now: dt.datetime,
    retention_days: int,
    rewrite: Callable[[bytes], bytes | None],
    rewrite_since: dt.date,
) -> PurgeReport:
    """Run every housekeeping step once; ``rewrite`` sees each record active since ``rewrite_since``
    (None: leave it as it is)."""
    day = local_day(now)
    async with db.transaction() as session:
        removed = await purge_inactive(session, today=day, retention_days=retention_days)
        forgotten = await forget_processed(session, before=now - UPDATE_MEMORY)
        unlinked, gone = await forget_referrals(session, today=day)
        rolled = await roll_up_old_days(session, today=day)
        await forget_redeem_failures(session, before=now - FAILURE_MEMORY)
    async with db.transaction() as session:
        ring = await keys.get(session, refresh=True)
        pruned = await rewrite_records(session, ring, active_since=rewrite_since, change=rewrite)
    deleted, kept = await prune_retired_keys(db, secrets, now=now)
    if db.wipe_pending:
        await db.wipe_old_versions()
    return PurgeReport(
        removed, day - dt.timedelta(days=retention_days), deleted, kept, forgotten, pruned, unlinked, gone, rolled,
        keep_daily_from(day),
    )


__all__ = ["FAILURE_MEMORY", "PurgeReport", "UPDATE_MEMORY", "purge"]
