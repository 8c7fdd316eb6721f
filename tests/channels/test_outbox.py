"""The outbox: messages the bot starts, sealed until delivered, retried, never lost to a kill.

Delivery runs through the real Zalo and web-chat adapters against the fake Zalo Open API and a
real WebSocket on 127.0.0.1; PostgreSQL runs when ANTAM_TEST_DATABASE_URL is set (two workers
on one database, each with its own connection pool).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy import select

from bot import metrics
from bot.app import channel_of, make_app
from bot.channels.registry import capabilities
from bot.bootstrap import Services, open_services
from bot.channels.webchat import WebChat
from bot.channels.zalo import ZaloChannel
from bot.clock import FixedClock
from bot.config import Settings
from bot.outbox import FIRST_RETRY, GIVE_UP, LEASE, PAGE_WAIT, OutboxWorker, to_rows, write
from bot.record import PersonRecord
from bot.runtime import Runtime
from handlers.render import RenderedButton, RenderedReply
from handlers.state import State
from storage import outbox
from storage.outbox import OutboxMessage
from tests.channels.drivers import WEB_SESSION, ZALO_APP_ID, ZALO_APP_SECRET, ZALO_OA_SECRET, ZALO_USER
from tests.fakes.tcp_proxy import TcpProxy
from tests.fakes.zalo_api import FakeZaloAPI

ROOT = Path(__file__).resolve().parents[2]
ACCESS = "zalo-access-0-INITIALqQ7hV3"


def zalo_settings(settings: Settings, base_url: str) -> Settings:
    return settings.model_copy(
        update={
            "zalo_app_id": ZALO_APP_ID,
            "zalo_oa_secret_key": SecretStr(ZALO_OA_SECRET),
            "zalo_app_secret_key": SecretStr(ZALO_APP_SECRET),
            "zalo_access_token": SecretStr(ACCESS),
            "zalo_api_base_url": base_url,
            "zalo_oauth_base_url": base_url,
        }
    )


@pytest.fixture
async def fake(clock: FixedClock) -> AsyncIterator[FakeZaloAPI]:
    api = FakeZaloAPI(
        app_id=ZALO_APP_ID,
        oa_secret_key=ZALO_OA_SECRET,
        app_secret_key=ZALO_APP_SECRET,
        access_token=ACCESS,
        refresh_token="zalo-refresh-0-INITIALpZ4kL8",
        clock=lambda: clock.now().timestamp(),
    )
    async with api:
        yield api


@contextlib.asynccontextmanager
async def zalo_worker(settings: Settings, fake: FakeZaloAPI, clock: FixedClock) -> AsyncIterator[tuple[Services, OutboxWorker]]:
    """One worker process as far as the outbox is concerned: its services, its Zalo channel."""
    services = await open_services(zalo_settings(settings, fake.base_url), clock=clock, warn=lambda _m: None)
    channel = ZaloChannel(Runtime(services), services.settings)
    await channel.start()
    try:
        fake.text(ZALO_USER, "chào")  # the person wrote to the OA lately: within Zalo's reply window
        yield services, OutboxWorker(services, {"zalo": channel})
    finally:
        await channel.stop()
        await services.close()


async def enqueue(services: Services, channel: str, address: str, text: str) -> int:
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        line = [RenderedReply(text, (RenderedButton("Xem", "m"),))]
        return await outbox.enqueue(session, ring, channel=channel, address=address, replies=to_rows(line), now=services.clock.now())


async def rows(services: Services) -> list[OutboxMessage]:
    async with services.db.transaction() as session:
        return list((await session.scalars(select(OutboxMessage))).all())


def counted(channel: str, outcome: str) -> float:
    return metrics.REGISTRY.get_sample_value("antam_outbox_total", {"channel": channel, "outcome": outcome}) or 0.0


# ---- the reply address in the record -----------------------------------------------------------


def test_the_address_is_kept_only_while_a_feature_needs_it() -> None:
    """Kept with the first feature, gone with the last; records from before have none."""
    record = PersonRecord(State())
    assert b'"a"' not in record.to_bytes()
    kept = record.keep_address(ZALO_USER, "reminders").keep_address(ZALO_USER, "counsellor")
    again = PersonRecord.from_bytes(kept.to_bytes())
    assert again.address == ZALO_USER and again.needs == {"reminders", "counsellor"}
    assert again.release("reminders").address == ZALO_USER
    gone = again.release("reminders").release("counsellor")
    assert gone.address is None and ZALO_USER.encode() not in gone.to_bytes()
    old = b'{"s":' + State().to_bytes() + b',"m":[]}'
    assert PersonRecord.from_bytes(old).address is None, "a record written before addresses opens as before"


async def test_write_needs_a_kept_address(services: Services) -> None:
    """With no address kept, nothing is queued; with one, the row holds it sealed, never in plain."""
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        now = services.clock.now()
        line = [RenderedReply("Nhắc bạn: lịch hẹn xét nghiệm ngày mai.")]
        assert await write(session, ring, PersonRecord(State()), "zalo", line, now=now) is None
        kept = PersonRecord(State()).keep_address(ZALO_USER, "reminders").heard_now(now)
        assert await write(session, ring, kept, "zalo", line, now=now) is not None
    (row,) = await rows(services)
    assert ZALO_USER.encode() not in row.sealed and "lịch hẹn".encode() not in row.sealed
    assert row.channel == "zalo" and row.attempts == 0


# ---- delivery -----------------------------------------------------------------------------------


async def test_delivered_once_then_deleted(settings: Settings, fake: FakeZaloAPI, clock: FixedClock) -> None:
    before = counted("zalo", "sent")
    async with zalo_worker(settings, fake, clock) as (services, worker):
        await enqueue(services, "zalo", ZALO_USER, "Tư vấn viên đã trả lời bạn.")
        assert await worker.run_once() == 1
        assert await worker.run_once() == 0
        assert [m["text"] for m in fake.sent_to(ZALO_USER)] == ["Tư vấn viên đã trả lời bạn."]
        assert await rows(services) == []
    assert counted("zalo", "sent") == before + 1


async def test_retried_with_backoff_then_given_up(settings: Settings, fake: FakeZaloAPI, clock: FixedClock) -> None:
    """A 5xx is tried again later, each time later still; after GIVE_UP the row goes, counted."""
    given_up = counted("zalo", "given_up")
    async with zalo_worker(settings, fake, clock) as (services, worker):
        channel = channel_of_worker(worker)
        channel.api.retry_delay = 0.0
        await enqueue(services, "zalo", ZALO_USER, "Nhắc bạn.")
        fake.fail_next(status=502, times=2)
        assert await worker.run_once() == 1
        (row,) = await rows(services)
        first_wait = aware(row.not_before) - clock.now()
        assert first_wait >= dt.timedelta(seconds=5) and await worker.run_once() == 0, "not before its time"
        clock.advance(seconds=first_wait.total_seconds())
        assert await worker.run_once() == 1
        (row,) = await rows(services)
        assert aware(row.not_before) - clock.now() > first_wait, "backoff grows"
        assert fake.sent_to(ZALO_USER) == []
        fake.fail_next(status=503, times=1)
        clock.advance(seconds=GIVE_UP.total_seconds())
        assert await worker.run_once() == 1
        assert await rows(services) == [] and fake.sent_to(ZALO_USER) == []
    assert counted("zalo", "given_up") == given_up + 1


async def test_unreachable_people_are_dropped(settings: Settings, fake: FakeZaloAPI, clock: FixedClock) -> None:
    """Outside Zalo's reply window the message cannot go: dropped at once, counted, not retried."""
    async with zalo_worker(settings, fake, clock) as (services, worker):
        await enqueue(services, "zalo", ZALO_USER, "Nhắc bạn.")
        fake.fail_next(error=-230)
        before = counted("zalo", "unreachable")
        assert await worker.run_once() == 1
        assert await rows(services) == [] and counted("zalo", "unreachable") == before + 1


async def test_two_workers_deliver_each_message_once(settings: Settings, fake: FakeZaloAPI, clock: FixedClock) -> None:
    """Two workers on one database (PostgreSQL: SKIP LOCKED) share the outbox without a double send."""
    async with zalo_worker(settings, fake, clock) as (services, one), zalo_worker(settings, fake, clock) as (_s, two):
        for i in range(30):
            await enqueue(services, "zalo", ZALO_USER, f"Tin {i:02d}")
        handled = [0, 0]
        for _ in range(30):  # bounded: each round delivers at least one while any is left
            a, b = await asyncio.gather(one.run_once(), two.run_once())
            handled[0] += a
            handled[1] += b
            if not await rows(services):
                break
        sent = [m["text"] for m in fake.sent_to(ZALO_USER)]
        assert sent == [f"Tin {i:02d}" for i in range(30)], "every message once, in the order written"
        assert sum(handled) == 30


async def test_a_retried_row_holds_the_persons_next_one(settings: Settings, fake: FakeZaloAPI, clock: FixedClock) -> None:
    """The first message waits for its retry: the second does not overtake it (another person's does go)."""
    async with zalo_worker(settings, fake, clock) as (services, worker):
        channel = channel_of_worker(worker)
        channel.api.retry_delay = 0.0
        await enqueue(services, "zalo", ZALO_USER, "Tin một")
        await enqueue(services, "zalo", ZALO_USER, "Tin hai")
        fake.fail_next(status=502, times=1)  # the row waits for its retry
        assert await worker.run_once() == 1, "only the first is tried"
        assert fake.sent_to(ZALO_USER) == [] and len(await rows(services)) == 2
        clock.advance(seconds=FIRST_RETRY.total_seconds() + 1)
        assert await worker.run_once() == 2
        assert [m["text"] for m in fake.sent_to(ZALO_USER)] == ["Tin một", "Tin hai"]
        assert await rows(services) == []


async def test_a_worker_wakes_when_a_message_is_written(settings: Settings, fake: FakeZaloAPI, clock: FixedClock) -> None:
    """Polling only every minute, the worker still delivers at once: woken after the commit in
    this process, and (PostgreSQL) by the notification of a write through another pool."""
    async with zalo_worker(settings, fake, clock) as (services, worker):
        running = asyncio.create_task(worker.run(poll=60.0))
        try:
            await asyncio.sleep(0.5)  # one first round, then it waits
            await enqueue(services, "zalo", ZALO_USER, "Tin một")
            await wait_sent(fake, 1)
            if services.db.dialect == "postgresql":
                other = await open_services(services.settings, clock=clock, warn=lambda _m: None)
                try:
                    await enqueue(other, "zalo", ZALO_USER, "Tin hai")
                    await wait_sent(fake, 2)
                finally:
                    await other.close()
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running


async def wait_sent(fake: FakeZaloAPI, count: int, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(fake.sent_to(ZALO_USER)) < count:
        assert loop.time() < deadline, "not delivered without its poll"
        await asyncio.sleep(0.02)


# ---- Zalo's reply window and quota per person message -------------------------------------------


async def queue(services: Services, record: PersonRecord, text: str) -> PersonRecord | None:
    """``write`` in a transaction of its own; the record to keep, or None when nothing was queued."""
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        queued = await write(session, ring, record, "zalo", [RenderedReply(text)], now=services.clock.now())
        return queued.record if queued is not None else None


async def test_zalo_quota_per_person_message(settings: Settings, fake: FakeZaloAPI, clock: FixedClock) -> None:
    """Eight messages the bot starts per message of the person's; the ninth is not queued,
    counted as over_quota; a new message of the person's starts the quota again."""
    quota = capabilities("zalo").started_per_message
    assert quota == 8
    over = counted("zalo", "over_quota")
    async with zalo_worker(settings, fake, clock) as (services, worker):
        record: PersonRecord | None = PersonRecord(State()).keep_address(ZALO_USER, "reminders").heard_now(clock.now())
        for i in range(quota - 1):
            assert record is not None
            record = await queue(services, record, f"Tin {i}")
        assert record is not None and record.started == quota - 1
        assert await queue(services, record, "x" * 2100) is None, "two messages once split: one too many"
        last = await queue(services, record, f"Tin {quota - 1}")
        assert last is not None and await queue(services, last, "Tin thừa") is None
        assert counted("zalo", "over_quota") == over + 2
        assert PersonRecord.from_bytes(last.to_bytes()).started == quota, "the count is kept in the record"
        assert await worker.run_once() == quota and await worker.run_once() == 0
        assert [m["text"] for m in fake.sent_to(ZALO_USER)] == [f"Tin {i}" for i in range(quota)]
        assert await rows(services) == []
        clock.advance(seconds=60)
        again = last.heard_now(clock.now())  # the person wrote again
        assert again.started == 0 and await queue(services, again, "Tin mới") is not None
        assert await worker.run_once() == 1 and fake.sent_to(ZALO_USER)[-1]["text"] == "Tin mới"


async def test_zalo_reply_window(settings: Settings, fake: FakeZaloAPI, clock: FixedClock) -> None:
    """Outside the 48 hours after the person's last message nothing is queued; a row whose window
    ends while it waits for a retry is given up unsent. Both counted as outside_window."""
    outside = counted("zalo", "outside_window")
    async with zalo_worker(settings, fake, clock) as (services, worker):
        channel_of_worker(worker).api.retry_delay = 0.0
        kept = PersonRecord(State()).keep_address(ZALO_USER, "reminders")
        assert await queue(services, kept, "Chưa từng nhắn") is None, "no message of the person's is known"
        old = kept.heard_now(clock.now() - dt.timedelta(hours=49))
        assert await queue(services, old, "Quá 48 giờ") is None
        assert counted("zalo", "outside_window") == outside + 2 and await rows(services) == []
        late = kept.heard_now(clock.now() - dt.timedelta(hours=47))
        assert await queue(services, late, "Sắp hết hạn") is not None
        (row,) = await rows(services)
        assert ZALO_USER.encode() not in row.sealed, "the window's end is sealed with the address"
        fake.fail_next(status=502, times=1)
        assert await worker.run_once() == 1
        assert len(await rows(services)) == 1 and fake.sent_to(ZALO_USER) == [], "retried later"
        clock.advance(hours=2)
        assert await worker.run_once() == 1
        assert await rows(services) == [] and fake.sent_to(ZALO_USER) == []
        assert counted("zalo", "outside_window") == outside + 3
        # Nothing else broke: a message within the window still goes.
        assert await queue(services, kept.heard_now(clock.now()), "Trong hạn") is not None
        assert await worker.run_once() == 1
        assert [m["text"] for m in fake.sent_to(ZALO_USER)] == ["Trong hạn"]


def channel_of_worker(worker: OutboxWorker) -> ZaloChannel:
    channel = worker.channels["zalo"]
    assert isinstance(channel, ZaloChannel)
    return channel


def aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


# ---- the web chat: only to an open page, on whichever worker holds it ---------------------------


async def test_web_chat_reaches_the_page_on_the_worker_that_holds_it(services: Services, clock: FixedClock) -> None:
    """Worker A has no page open and leaves the row; worker B has it and delivers; a row for a
    page open nowhere is dropped after PAGE_WAIT, counted as no_page."""
    apps = [make_app(services, maintenance=False, channels=("web",), outbox=False) for _ in range(2)]
    clients = [TestClient(TestServer(app, host="127.0.0.1")) for app in apps]
    for client in clients:
        await client.start_server()
    try:
        url = clients[1].make_url("/")
        async with clients[1].ws_connect("/chat/ws", origin=f"{url.scheme}://{url.host}:{url.port}") as ws:
            await ws.send_json({"session": WEB_SESSION, "id": "m0000001", "text": "/start"})
            await ws.receive_json(timeout=30)
            workers = [OutboxWorker(services, {"web": channel_of(app, WebChat)}) for app in apps]
            await enqueue(services, "web", WEB_SESSION, "Tư vấn viên đã trả lời bạn.")
            await enqueue(services, "web", "NoPageOpenAnywhere0000000", "Không ai nhận.")
            assert await workers[0].run_once() == 0, "A holds no page"
            assert await workers[1].run_once() == 1
            pushed = await ws.receive_json(timeout=30)
            assert pushed["replies"][0]["text"] == "Tư vấn viên đã trả lời bạn." and len(pushed["id"]) == 32
            before = counted("web", "no_page")
            clock.advance(seconds=PAGE_WAIT.total_seconds() + 1)
            assert await workers[0].run_once() == 0
            assert await rows(services) == [] and counted("web", "no_page") == before + 1
    finally:
        for client in clients:
            await client.close()


# ---- a worker killed mid-delivery ---------------------------------------------------------------

CHILD = """
import asyncio, sys
from bot.bootstrap import open_services
from bot.channels.registry import ZALO, ServerOptions
from bot.config import load_settings
from bot.outbox import OutboxWorker
from bot.runtime import Runtime

async def main():
    services = await open_services(load_settings(env_file=None), warn=lambda _m: None)
    channel = ZALO.build(Runtime(services), ServerOptions())
    await channel.start()
    print("ready", flush=True)
    await OutboxWorker(services, {"zalo": channel}).run_once()
    print("done", flush=True)

asyncio.run(main())
"""


async def test_a_worker_killed_mid_delivery_loses_nothing(
    settings: Settings, fake: FakeZaloAPI, tmp_path: Path
) -> None:
    """SIGKILL while the platform holds the request: the row survives, and once its lease is
    over the next worker delivers it, once."""
    proxy = TcpProxy("127.0.0.1", int(fake.base_url.rsplit(":", 1)[1]))
    await proxy.start()
    proxy.freeze()  # the platform accepts the connection and answers nothing
    fake.text(ZALO_USER, "chào")  # within Zalo's reply window
    configured = zalo_settings(settings, f"http://127.0.0.1:{proxy.port}")
    real = FixedClock(dt.datetime.now(dt.UTC))
    services = await open_services(configured, clock=real, warn=lambda _m: None)
    try:
        await enqueue(services, "zalo", ZALO_USER, "Tư vấn viên đã trả lời bạn.")
    finally:
        await services.close()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "ANTAM_DATA_DIR": str(configured.data_dir),
        "ANTAM_DATABASE_URL": configured.effective_database_url,
        "ANTAM_MASTER_KEY": configured.master_key.get_secret_value() if configured.master_key else "",
        "ZALO_APP_ID": ZALO_APP_ID,
        "ZALO_OA_SECRET_KEY": ZALO_OA_SECRET,
        "ZALO_ACCESS_TOKEN": ACCESS,
        "ZALO_API_BASE_URL": f"http://127.0.0.1:{proxy.port}",
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        assert (await asyncio.wait_for(child.stdout.readline(), timeout=60)).strip() == b"ready"
        for _ in range(300):  # bounded: the child leases the row and connects within seconds
            if proxy._writers:
                break
            await asyncio.sleep(0.05)
        assert proxy._writers, "the child reached the platform"
        child.send_signal(signal.SIGKILL)
        await asyncio.wait_for(child.wait(), timeout=30)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert child.returncode == -signal.SIGKILL
    assert fake.sent_to(ZALO_USER) == [], "nothing reached the platform"
    # The dead worker's connection goes with it: what the platform never took is not sent. (A
    # request the platform had taken before the kill would go twice: Telegram and Zalo keep no
    # dedupe key; the web page drops a repeat by the row's dedupe id.)
    await proxy.cut()
    later = FixedClock(dt.datetime.now(dt.UTC) + LEASE + dt.timedelta(seconds=1))
    services = await open_services(zalo_settings(settings, fake.base_url), clock=later, warn=lambda _m: None)
    try:
        (row,) = await rows(services)
        assert row.attempts == 1, "the killed worker had leased it"
        channel = ZaloChannel(Runtime(services), services.settings)
        await channel.start()
        try:
            assert await OutboxWorker(services, {"zalo": channel}).run_once() == 1
        finally:
            await channel.stop()
        assert [m["text"] for m in fake.sent_to(ZALO_USER)] == ["Tư vấn viên đã trả lời bạn."]
        assert await rows(services) == []
    finally:
        await services.close()
        await proxy.close()
