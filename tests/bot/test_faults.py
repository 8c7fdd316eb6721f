"""Faults: the database goes away, stalls, or is locked, and comes back.

PostgreSQL sits behind a real TCP proxy on 127.0.0.1 that can refuse connections (``cut``) or
keep them open and forward nothing (``freeze``, a stalled server). SQLite is locked by another
process. While the database is unreachable or silent, people still get an answer within
ANTAM_DB_TIMEOUT_SECONDS: a safety message its full first reply (the engine needs no database),
anything else a short "tạm thời gián đoạn" with the hotlines; nothing is stored for that
message. When the database is back, the worker answers and stores normally again by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bot.app import make_app
from bot.bootstrap import open_services
from bot.clock import FixedClock
from bot.config import Settings
from bot.runtime import Runtime
from bot.bootstrap import Services
from handlers.render import RenderedReply
from handlers.types import Inbound
from storage.db import DatabaseTimeout
from storage.models import Person, ProcessedUpdate
from tests.support.postgres import PG_URL, reset_postgres
from tests.fakes.tcp_proxy import TcpProxy
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.fakes.zalo_api import FakeZaloAPI


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    if not PG_URL:
        pytest.skip("needs PostgreSQL (ANTAM_TEST_DATABASE_URL); CI sets it and runs this test")
    await reset_postgres(PG_URL)
    url = make_url(PG_URL)
    running = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await running.start()
    try:
        yield running
    finally:
        with contextlib.suppress(Exception):
            await running.close()


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
async def test_database_outage(backend: str, proxy: TcpProxy, tmp_path, master_key: str, clock: FixedClock) -> None:  # type: ignore[no-untyped-def]
    """During an outage the person gets the interruption notice with hotlines; afterwards all is normal."""
    url = make_url(PG_URL).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = Settings(ANTAM_DATA_DIR=tmp_path / "data", ANTAM_DATABASE_URL=url, ANTAM_MASTER_KEY=master_key)
    services = await open_services(settings, clock=clock, warn=lambda _m: None)
    runtime = Runtime(services)
    try:
        first = await runtime.answer(Inbound("telegram", "outage", payload="c:accept"))
        assert "Cảm ơn bạn" in first[0].text
        await proxy.cut()
        during = await asyncio.wait_for(runtime.answer(Inbound("telegram", "outage", payload="t:pep")), timeout=30)
        assert "tạm thời gián đoạn" in during[0].text
        assert "113" in during[0].text and "115" in during[0].text and "111" in during[0].text
        await proxy.restore()
        after = await asyncio.wait_for(runtime.answer(Inbound("telegram", "outage", payload="t:pep")), timeout=30)
        assert "PEP" in after[0].text and "gián đoạn" not in after[0].text
    finally:
        await services.close()


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
async def test_connections_that_died_while_pooled(backend: str, proxy: TcpProxy, tmp_path, master_key: str, clock: FixedClock) -> None:  # type: ignore[no-untyped-def]
    """The database restarted between two updates: the next one is answered normally.

    Pooled connections are not pinged before use; the first statement on a dead one fails, the
    pool drops every connection as old as it, and the runtime runs the update again.
    """
    url = make_url(PG_URL).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = Settings(ANTAM_DATA_DIR=tmp_path / "data", ANTAM_DATABASE_URL=url, ANTAM_MASTER_KEY=master_key)
    services = await open_services(settings, clock=clock, warn=lambda _m: None)
    runtime = Runtime(services)
    try:
        # Several pooled connections, all of which will be dead.
        await asyncio.gather(*(runtime.answer(Inbound("telegram", f"pooled{i}", payload="c:accept")) for i in range(4)))
        await proxy.cut()
        await proxy.restore()
        after = await asyncio.wait_for(runtime.answer(Inbound("telegram", "pooled0", payload="t:pep")), timeout=30)
        assert "PEP" in after[0].text and "gián đoạn" not in after[0].text
        again = await asyncio.wait_for(runtime.answer(Inbound("telegram", "pooled1", payload="t:pep")), timeout=30)
        assert "PEP" in again[0].text
    finally:
        await services.close()


# The deadline used below, and what "in time" means on a shared 2-core machine. Before the
# deadlines, a frozen PostgreSQL held a pooled request for minutes and a new one for 60 s, and
# a locked SQLite answered its queued messages after 10, 20, 30… s.
DEADLINE = 2.0
IN_TIME = 15.0
HOTLINES = ("113", "115", "111")


async def timed(runtime: Runtime, inbound: Inbound) -> tuple[float, str]:
    started = time.perf_counter()
    replies = await asyncio.wait_for(runtime.answer(inbound), timeout=IN_TIME)
    return time.perf_counter() - started, _text(replies)


def _text(replies: list[RenderedReply]) -> str:
    return "\n".join(reply.text for reply in replies)


async def _stored(services: Services) -> tuple[int, int]:
    async with services.db.transaction() as session:
        people = await session.scalar(select(func.count()).select_from(Person))
        updates = await session.scalar(select(func.count()).select_from(ProcessedUpdate))
    return int(people or 0), int(updates or 0)


async def _answers_while_stalled(runtime: Runtime, stall: str) -> None:
    """The same four messages at once, from a consenting person and a new one."""
    results = await asyncio.gather(
        timed(runtime, Inbound("telegram", "stall-old", text="em không muốn sống", update_id="2")),
        timed(runtime, Inbound("telegram", "stall-old", text="bị thủng bao tối qua", update_id="3")),
        timed(runtime, Inbound("telegram", "stall-new", text="xin chào", update_id="4")),
        timed(runtime, Inbound("telegram", "stall-new", payload="e", update_id="6")),
    )
    (crisis_s, crisis), (pep_s, pep), (plain_s, plain), (button_s, button) = results
    for seconds in (crisis_s, pep_s, plain_s, button_s):
        assert seconds < IN_TIME, f"{stall}: answered after {seconds:.1f} s"
    # Safety messages and the emergency button: their own full first reply, not the apology.
    assert "gián đoạn" not in crisis and "Bạn không một mình" in crisis
    assert all(number in crisis for number in HOTLINES)
    assert "gián đoạn" not in pep and "72 giờ" in pep
    assert "gián đoạn" not in button and all(number in button for number in HOTLINES)
    # Anything else: the short apology, with the numbers.
    assert "tạm thời gián đoạn" in plain
    assert all(number in plain for number in HOTLINES)


async def _normal_again(runtime: Runtime, services: Services, before: tuple[int, int]) -> None:
    """After the stall: nothing was stored for the stalled messages; the next ones are handled
    and stored, a redelivery of a stalled one included."""
    assert await _stored(services) == before
    again = await asyncio.wait_for(runtime.answer(Inbound("telegram", "stall-old", text="em không muốn sống", update_id="2")), timeout=IN_TIME)
    assert "Bạn không một mình" in _text(again)
    accepted = await asyncio.wait_for(runtime.answer(Inbound("telegram", "stall-new", payload="c:accept", update_id="5")), timeout=IN_TIME)
    assert "Cảm ơn bạn" in _text(accepted)
    people, updates = await _stored(services)
    assert people == before[0] + 1 and updates == before[1] + 2


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
async def test_frozen_database(backend: str, proxy: TcpProxy, tmp_path: Path, master_key: str, clock: FixedClock) -> None:
    """PostgreSQL stops answering (connections open, no reset): safety answers and the hotlines
    still come within the deadline, on a pooled connection and on a new one; then all is normal."""
    url = make_url(PG_URL).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = Settings(
        ANTAM_DATA_DIR=tmp_path / "data", ANTAM_DATABASE_URL=url, ANTAM_MASTER_KEY=master_key,
        ANTAM_DB_TIMEOUT_SECONDS=DEADLINE,
    )
    services = await open_services(settings, clock=clock, warn=lambda _m: None)
    await services.db.engine.dispose()  # one pooled connection below: the others must connect
    runtime = Runtime(services)
    try:
        await runtime.answer(Inbound("telegram", "stall-old", payload="c:accept", update_id="1"))
        before = await _stored(services)
        proxy.freeze()
        await _answers_while_stalled(runtime, "frozen PostgreSQL")
        with pytest.raises(DatabaseTimeout):  # /healthz's check gives up in time too
            await asyncio.wait_for(services.db.ping(), timeout=IN_TIME)
        proxy.thaw()
        await _normal_again(runtime, services, before)
    finally:
        proxy.thaw()
        await services.close()


LOCKER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
db.execute("ROLLBACK")
"""


@contextlib.contextmanager
def locked(path: Path | None) -> Iterator[None]:
    """Another process holds the SQLite database's write lock until the block ends."""
    assert path is not None
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        yield
        locker.communicate("", timeout=30)
    finally:
        if locker.poll() is None:
            locker.kill()
            locker.wait()


def sqlite_settings(tmp_path: Path, master_key: str) -> Settings:
    return Settings(ANTAM_DATA_DIR=tmp_path / "data", ANTAM_MASTER_KEY=master_key, ANTAM_DB_TIMEOUT_SECONDS=DEADLINE)


async def test_locked_sqlite(tmp_path: Path, master_key: str, clock: FixedClock) -> None:
    """Another process holds SQLite's write lock: every queued message is answered within the
    deadline (not one busy timeout after another), then all is normal."""
    services = await open_services(sqlite_settings(tmp_path, master_key), clock=clock, warn=lambda _m: None)
    runtime = Runtime(services)
    try:
        await runtime.answer(Inbound("telegram", "stall-old", payload="c:accept", update_id="1"))
        before = await _stored(services)
        with locked(services.db.sqlite_path):
            await _answers_while_stalled(runtime, "locked SQLite")
        await _normal_again(runtime, services, before)
    finally:
        await services.close()


# -- each channel, end to end, while the database is locked -------------------------------------


async def test_web_chat_answers_while_the_database_is_locked(tmp_path: Path, master_key: str, clock: FixedClock) -> None:
    """POST /chat/send and the WebSocket both bring the safety answer and the hotlines in time."""
    services = await open_services(sqlite_settings(tmp_path, master_key), clock=clock, warn=lambda _m: None)
    client = TestClient(TestServer(make_app(services, maintenance=False, channels=("web",)), host="127.0.0.1"))
    await client.start_server()
    session = "StallStallStallStall0123"
    try:
        with locked(services.db.sqlite_path):
            started = time.perf_counter()
            response = await client.post("/chat/send", json={"session": session, "id": "stall0001", "text": "cứu với"})
            assert response.status == 200
            body = "\n".join(r["text"] for r in (await response.json())["replies"])
            assert "gián đoạn" not in body and all(n in body for n in HOTLINES)
            ws = await client.ws_connect("/chat/ws", headers={"Origin": str(client.make_url("")).rstrip("/")})
            await ws.send_json({"session": session, "id": "stall0002", "text": "giá vàng hôm nay"})
            answer = await asyncio.wait_for(ws.receive_json(), timeout=IN_TIME)
            await ws.close()
            body = "\n".join(r["text"] for r in answer["replies"])
            assert "tạm thời gián đoạn" in body and all(n in body for n in HOTLINES)
            assert time.perf_counter() - started < 2 * IN_TIME
        assert await _stored(services) == (0, 0)
    finally:
        await client.close()
        await services.close()


async def test_telegram_answers_and_quick_exit_while_the_database_is_locked(
    tmp_path: Path, master_key: str, clock: FixedClock
) -> None:
    """Through the webhook: a safety message gets its answer, and /thoat still wipes the chat."""
    from tests.support.telegram import TOKEN, USER, all_messages, post, telegram_settings

    async with FakeTelegramAPI(token=TOKEN, seed=1) as fake:
        settings = telegram_settings(sqlite_settings(tmp_path, master_key), fake, webhook=True)
        services = await open_services(settings, clock=clock, warn=lambda _m: None)
        client = TestClient(TestServer(make_app(services, maintenance=False), host="127.0.0.1"))
        await client.start_server()
        try:
            await post(client, fake.user_command(USER, "/start", enqueue=False))
            with locked(services.db.sqlite_path):
                started = time.perf_counter()
                assert await post(client, fake.user_text(USER, "bị người yêu đánh", enqueue=False)) == 200
                newest = all_messages(fake, USER)[-1]
                assert newest["from"]["is_bot"] and all(n in newest["text"] for n in HOTLINES)
                assert "gián đoạn" not in newest["text"]
                assert await post(client, fake.user_command(USER, "/thoat", enqueue=False)) == 200
                assert [m["text"] for m in all_messages(fake, USER)] == ["Đã xong."]
                assert time.perf_counter() - started < 2 * IN_TIME
        finally:
            await client.close()
            await services.close()


async def test_zalo_answers_while_the_database_is_locked(tmp_path: Path, master_key: str, clock: FixedClock) -> None:
    """A Zalo event during the lock gets the apology with the hotlines in time."""
    from tests.support.zalo import ACCESS, APP_ID, APP_SECRET, OA_SECRET, REFRESH, USER, start_worker, stop_worker, texts

    fake = FakeZaloAPI(
        app_id=APP_ID, oa_secret_key=OA_SECRET, app_secret_key=APP_SECRET, access_token=ACCESS, refresh_token=REFRESH,
        clock=lambda: clock.now().timestamp(),
    )
    async with fake:
        worker = await start_worker(sqlite_settings(tmp_path, master_key), fake, clock)
        try:
            assert await worker.post(fake.follow(USER)) == 200  # the access token is in memory now
            with locked(worker.services.db.sqlite_path):
                started = time.perf_counter()
                sent = await asyncio.wait_for(worker.say(USER, "giá vàng hôm nay"), timeout=IN_TIME)
                assert "tạm thời gián đoạn" in texts(sent) and all(n in texts(sent) for n in HOTLINES)
                sent = await asyncio.wait_for(worker.say(USER, "em không muốn sống"), timeout=IN_TIME)
                assert "Bạn không một mình" in texts(sent)
                assert time.perf_counter() - started < 2 * IN_TIME
        finally:
            await stop_worker(worker)


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
async def test_zalo_keeps_sending_while_the_token_refresh_waits_on_a_frozen_database(
    backend: str, proxy: TcpProxy, tmp_path: Path, master_key: str, clock: FixedClock
) -> None:
    """The access token is due for its refresh (minutes left) when PostgreSQL freezes: the
    refresh waits, but the hotlines go out with the token at hand, in time."""
    from tests.support.zalo import ACCESS, APP_ID, APP_SECRET, OA_SECRET, REFRESH, USER, start_worker, stop_worker, texts

    url = make_url(PG_URL).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = Settings(
        ANTAM_DATA_DIR=tmp_path / "data", ANTAM_DATABASE_URL=url, ANTAM_MASTER_KEY=master_key,
        ANTAM_DB_TIMEOUT_SECONDS=DEADLINE,
    )
    fake = FakeZaloAPI(
        app_id=APP_ID, oa_secret_key=OA_SECRET, app_secret_key=APP_SECRET, access_token=ACCESS, refresh_token=REFRESH,
        clock=lambda: clock.now().timestamp(),
    )
    async with fake:
        worker = await start_worker(settings, fake, clock)
        try:
            fake.revoke_access_token()
            assert await worker.say(USER, "menu"), "refreshed: the token now expires in 25 hours"
            clock.advance(hours=24, minutes=55)
            proxy.freeze()
            sent = await asyncio.wait_for(worker.say(USER, "em không muốn sống"), timeout=IN_TIME)
            assert "Bạn không một mình" in texts(sent) and all(n in texts(sent) for n in HOTLINES)
            assert len(fake.calls_to("oauth")) == 1, "no refresh without the database's row lock"
            proxy.thaw()
        finally:
            proxy.thaw()
            await stop_worker(worker)
