"""Vietnam's time zone, once: days (for counting, expiry and reports) are local days.

Vietnam keeps UTC+7 all year (Asia/Ho_Chi_Minh has had no change since 1975), so a fixed
offset is exact and needs no zone database on the server.
"""

from __future__ import annotations

import datetime as dt

VIETNAM = dt.timezone(dt.timedelta(hours=7), "ICT")


def local_day(now: dt.datetime) -> dt.date:
    """The day in Vietnam at the instant ``now`` (an aware datetime)."""
    return now.astimezone(VIETNAM).date()


__all__ = ["VIETNAM", "local_day"]
