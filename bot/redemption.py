"""The door to redeeming a code (referrals/redeeming.py) shared by `antam referral redeem` and
the staff app: one transaction, retried on a deadlock (two codes of one erased person used at
the same moment lock each other's rows), and the redeemed-codes metric."""

from __future__ import annotations

from bot import metrics
from bot.bootstrap import Services
from bot.record import PersonMarks
from referrals.redeeming import Place, Result, redeem as redeem_code
from storage.transactions import Attempt


async def redeem(services: Services, text: str, place: Place, *, actor: str | None = None) -> Result:
    """Redeem a typed code at ``place``; ``actor`` (a staff account) throttles per account too."""
    now = services.clock.now()

    async def work(attempt: Attempt) -> Result:
        return await redeem_code(
            attempt.session, attempt.ring, PersonMarks(),
            pepper=services.secrets.pepper, text=text, place=place, now=now, actor=actor,
        )

    result = await services.run(work)
    if result.ok and result.service_type:
        metrics.REFERRALS_REDEEMED.inc()
    return result


__all__ = ["redeem"]
