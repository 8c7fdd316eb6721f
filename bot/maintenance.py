"""The door to housekeeping (referrals/housekeeping.py) for `antam purge` and `antam run`:
it says what of a person's record ages (message ids past Telegram's 48-hour deletion window)."""

from __future__ import annotations

import datetime as dt

from bot.bootstrap import Services
from bot.clock import today
from bot.record import MESSAGE_LIFETIME, PersonRecord
from referrals.housekeeping import PurgeReport, purge as purge_all


async def purge(services: Services) -> PurgeReport:
    """Run every housekeeping step once."""
    now = services.clock.now()

    def without_old_ids(raw: bytes) -> bytes | None:
        record = PersonRecord.from_bytes(raw)
        fresh = record.fresh(now)
        return fresh.to_bytes() if fresh.messages != record.messages else None

    return await purge_all(
        services.db, services.secrets, services.keys, now=now, retention_days=services.settings.retention_days,
        rewrite=without_old_ids, rewrite_since=today(services.clock) - dt.timedelta(days=MESSAGE_LIFETIME.days + 1),
    )


__all__ = ["purge"]
