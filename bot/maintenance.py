"""Retention and key housekeeping, run by `antam purge` and daily by `antam run`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from bot.bootstrap import Services
from bot.clock import today
from storage.keys import prune_retired_keys
from storage.persons import purge_inactive


@dataclass(frozen=True)
class PurgeReport:
    removed_records: int
    cutoff: dt.date
    deleted_key_ids: list[int]
    kept_key_ids: list[int]


async def purge(services: Services) -> PurgeReport:
    """Delete records inactive longer than the retention period and retired keys no longer used."""
    day = today(services.clock)
    days = services.settings.retention_days
    async with services.db.transaction() as session:
        removed = await purge_inactive(session, today=day, retention_days=days)
    deleted, kept = await prune_retired_keys(services.db, services.secrets, now=services.clock.now())
    return PurgeReport(removed, day - dt.timedelta(days=days), deleted, kept)
