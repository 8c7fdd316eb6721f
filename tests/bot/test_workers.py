"""Several workers on one PostgreSQL, and a worker killed with SIGKILL under load.

Two real `antam run` processes in webhook mode share one database and a fake Bot API on
127.0.0.1. Updates are split between them and every one is also redelivered to the other
worker, as Telegram does after a timeout: each must be answered exactly once, and the counters
must equal a recount of what is stored. Then one worker is killed mid-stream: no code a person
was shown may be lost, no update answered twice, and the counters still equal the recount.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.bootstrap import open_services
from bot.clock import FixedClock
from bot.config import Settings
from referrals import codes
from referrals.counters import daily_sums
from storage.crypto import MasterSecrets, encode_master_key, generate_master_key, parse_master_key
from storage.models import Person
from storage.referral_models import Referral
from tests.support.postgres import PG_URL, reset_postgres
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.support.relay import Worker

TOKEN = "515151:WORKERS-token_abc"
SECRET = "workers-secret-token"
STEPS = ("/start", "c:accept", "w:3390", "ri:tyt_binh_lu:1")

pytestmark = pytest.mark.postgres


@pytest.fixture
def master_key_text() -> str:
    return encode_master_key(generate_master_key())


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegramAPI]:
    async with FakeTelegramAPI(token=TOKEN, seed=3) as api:
        yield api


@pytest.fixture
async def workers(
    clean_env: dict[str, str], tmp_path: Path, fake: FakeTelegramAPI, master_key_text: str
) -> AsyncIterator[list[Worker]]:
    if not PG_URL:
        pytest.skip("needs PostgreSQL (ANTAM_TEST_DATABASE_URL); CI sets it and runs this test")
    await reset_postgres(PG_URL)
    env = dict(
        clean_env,
        ANTAM_DATABASE_URL=PG_URL,
        ANTAM_MASTER_KEY=master_key_text,
        ANTAM_PUBLIC_URL="https://antam.example.org",
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE_URL=fake.base_url,
        TELEGRAM_WEBHOOK_SECRET=SECRET,
    )
    started = [Worker(env, tmp_path, "a"), Worker(env, tmp_path, "b")]
    try:
        for worker in started:
            await asyncio.to_thread(worker.start)
        yield started
    finally:
        for worker in started:
            await asyncio.to_thread(worker.stop)


def _newest_bot_message(fake: FakeTelegramAPI, user: int) -> int | None:
    ids = [i for i in range(1, 3000) if (m := fake.message(user, i)) is not None and m["from"]["is_bot"]]
    return ids[-1] if ids else None


def _update(fake: FakeTelegramAPI, user: int, step: str) -> dict[str, Any]:
    message = _newest_bot_message(fake, user)
    if step.startswith("/") or message is None:
        # With no answer on screen yet (it was lost with a killed worker), a person starts again.
        return fake.user_command(user, "/start", enqueue=False)
    return fake.user_callback(user, step, message, enqueue=False)


async def _deliver(http: aiohttp.ClientSession, targets: list[Worker], update: dict[str, Any]) -> Worker | None:
    """Post like Telegram: to the first worker, and again to the next until one answers 200."""
    for worker in targets:
        try:
            async with http.post(worker.webhook, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
                                 timeout=aiohttp.ClientTimeout(total=30)) as response:
                if response.status == 200:
                    return worker
        except (aiohttp.ClientError, asyncio.TimeoutError):
            continue
    return None


async def _check_stored(master: str, fake: FakeTelegramAPI, users: list[int], tmp_path: Path) -> None:
    """Every code a person was shown is stored, and the counters equal a recount of the rows."""
    settings = Settings(ANTAM_DATA_DIR=tmp_path / "check", ANTAM_DATABASE_URL=PG_URL, ANTAM_MASTER_KEY=master)
    services = await open_services(settings, clock=FixedClock(time_now()), warn=lambda _m: None)
    pepper = MasterSecrets.from_master_key(parse_master_key(master)).pepper
    try:
        async with services.db.transaction() as session:
            stored = set((await session.scalars(select(Referral.code_hash))).all())
            people = int(await session.scalar(select(func.count()).select_from(Person)) or 0)
            sums = await daily_sums(session, start=time_now().date().replace(year=2000), end=time_now().date().replace(year=2100),
                                    metrics=["consented", "referral_issued", "reached:m"], by=("metric",))
    finally:
        await services.close()
    shown = [
        message["text"].split("Mã giới thiệu của bạn: ")[1][:9]
        for user in users
        for message in fake.sent_messages(user)
        if "Mã giới thiệu của bạn: " in message["text"]
    ]
    for code in shown:
        assert codes.code_hash(pepper, codes.normalise(code)) in stored, "a code a person was shown is lost"
    assert sums.get(("consented",), 0) == people
    assert sums.get(("referral_issued",), 0) == len(stored)
    assert sums.get(("reached:m",), 0) == people, "every consenting person here listed services once"


def time_now():  # type: ignore[no-untyped-def]
    import datetime as dt

    return dt.datetime.now(dt.UTC)


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_two_workers_answer_each_update_once(
    backend: str, workers: list[Worker], fake: FakeTelegramAPI, master_key_text: str, tmp_path: Path
) -> None:
    """Updates split between two workers, each also redelivered to the other: one answer each."""
    users = [7_800_000_000 + i for i in range(10)]
    async with aiohttp.ClientSession() as http:

        async def person(index: int, user: int) -> None:
            for step_number, step in enumerate(STEPS):
                update = _update(fake, user, step)
                first = workers[(index + step_number) % 2]
                other = workers[(index + step_number + 1) % 2]
                assert await _deliver(http, [first], update)
                assert await _deliver(http, [other], update), "a redelivery is acknowledged"

        await asyncio.gather(*(person(i, user) for i, user in enumerate(users)))
    for user in users:
        assert len(fake.sent_messages(user)) == len(STEPS), "each update answered exactly once"
    await _check_stored(master_key_text, fake, users, tmp_path)


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_a_worker_killed_under_load_loses_nothing(
    backend: str, workers: list[Worker], fake: FakeTelegramAPI, master_key_text: str, tmp_path: Path
) -> None:
    """SIGKILL mid-stream: redelivered updates are answered at most once and no shown code is lost."""
    users = [7_900_000_000 + i for i in range(16)]
    a, b = workers
    failed_over = 0
    updates_sent = {user: 0 for user in users}
    async with aiohttp.ClientSession() as http:

        async def person(user: int) -> None:
            nonlocal failed_over
            for step in STEPS:
                update = _update(fake, user, step)
                updates_sent[user] += 1
                # Telegram redelivers what was not acknowledged; here it falls over to the other worker.
                answered = await _deliver(http, [a, b], update)
                if answered is None:
                    await asyncio.sleep(0.5)
                    answered = await _deliver(http, [b, a], update)
                assert answered is not None
                failed_over += answered is b
                await asyncio.sleep(0)

        load = asyncio.gather(*(person(user) for user in users))
        await asyncio.sleep(0.6)
        await asyncio.to_thread(a.kill)
        await load
        assert failed_over, "the kill happened while updates were still flowing"
        await asyncio.to_thread(a.start)
        # The restarted worker takes the rest of the stream.
        async with aiohttp.ClientSession() as again:
            extra = 7_950_000_000
            for step in STEPS:
                assert await _deliver(again, [a], _update(fake, extra, step))
        users.append(extra)
    updates_sent[users[-1]] = len(STEPS)
    for user in users:
        assert len(fake.sent_messages(user)) <= updates_sent[user], "no update is answered twice"
    assert len(fake.sent_messages(users[-1])) == len(STEPS)
    await _check_stored(master_key_text, fake, users, tmp_path)
    assert os.path.exists(tmp_path / "a.err")
