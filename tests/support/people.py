"""A person's steps through the runtime (pressing buttons, getting a code) and counter totals."""

from __future__ import annotations

import datetime as dt

from bot.bootstrap import Services
from bot.runtime import Runtime
from handlers.types import Inbound
from referrals.counters import daily_sums
from referrals.redeeming import Place

BINH_LU = 3390
LAI_CHAU = 12
HERE = Place(commune=BINH_LU)


async def press(runtime: Runtime, user: str, *payloads: str, channel: str = "telegram") -> list[str]:
    """Press buttons one after another; return the texts of every reply."""
    texts = []
    for payload in payloads:
        for reply in await runtime.handle(Inbound(channel, user, payload=payload)):
            texts.append(reply.text)
    return texts


async def get_code(runtime: Runtime, user: str, *, accept: bool = True) -> str:
    """Accept, choose Bình Lư and ask for an HIV-test code; return the code shown."""
    steps = (["c:accept"] if accept else []) + [f"w:{BINH_LU}", "ri:tyt_binh_lu:1"]
    shown = (await press(runtime, user, *steps))[-1]
    line = next(line for line in shown.splitlines() if "Mã giới thiệu của bạn" in line)
    return line.split(": ")[1]


async def totals(services: Services, *metrics: str) -> dict[str, int]:
    async with services.db.transaction() as session:
        sums = await daily_sums(session, start=dt.date(2000, 1, 1), end=dt.date(2100, 1, 1), metrics=list(metrics), by=("metric",))
    return {metric: sums.get((metric,), 0) for metric in metrics}
