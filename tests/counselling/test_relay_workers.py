"""The counsellor chat over two workers on one PostgreSQL (issue #18, "Several workers").

Two real `antam run` processes share a database and the fake Bot API on 127.0.0.1. The
person's Telegram updates go to worker A's webhook (python-telegram-bot in the worker against
the fake), the counsellor's WebSocket is on worker B (session cookie, Origin, CSRF token): the
person's messages reach the counsellor's socket in order, the counsellor's answers reach the
person as sendMessage with protect_content in order, and an answer written but not delivered
when the workers are killed is delivered once a worker runs again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.bootstrap import open_services
from bot.clock import SystemClock
from bot.config import Settings
from storage.crypto import encode_master_key, generate_master_key
from storage.staff import Role
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.staff_fixtures import PASSWORD, add_account
from tests.support.postgres import PG_URL, reset_postgres
from tests.support.relay import TOKEN, WARD, Counsellor, Person, Worker, worker_env

pytestmark = pytest.mark.postgres
USER = 7_600_000_001


@pytest.fixture
def master_key_text() -> str:
    return encode_master_key(generate_master_key())


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegramAPI]:
    async with FakeTelegramAPI(token=TOKEN, seed=18) as api:
        yield api


@pytest.fixture
async def workers(
    clean_env: dict[str, str], tmp_path: Path, fake: FakeTelegramAPI, master_key_text: str
) -> AsyncIterator[list[Worker]]:
    if not PG_URL:
        pytest.skip("needs PostgreSQL (ANTAM_TEST_DATABASE_URL); CI sets it and runs this test")
    await reset_postgres(PG_URL)
    env = worker_env(clean_env, PG_URL, master_key_text, fake)
    started = [Worker(env, tmp_path, "a"), Worker(env, tmp_path, "b")]
    try:
        for worker in started:
            await asyncio.to_thread(worker.start)
        yield started
    finally:
        for worker in started:
            await asyncio.to_thread(worker.stop)


async def add_counsellor(master_key_text: str, tmp_path: Path, name: str) -> None:
    settings = Settings(ANTAM_DATA_DIR=tmp_path / "admin", ANTAM_DATABASE_URL=PG_URL, ANTAM_MASTER_KEY=master_key_text)
    services = await open_services(settings, clock=SystemClock(), warn=lambda _m: None)
    try:
        await add_account(services, name, Role.COUNSELLOR, ward=WARD)
    finally:
        await services.close()


async def received(person: Person, wanted: list[str], timeout: float = 15.0) -> list[str]:
    """Wait until every text of ``wanted`` reached the person; the texts that start with one."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = [text for text in person.received() if any(text.startswith(w) for w in wanted)]
        if all(any(text.startswith(w) for text in got) for w in wanted) or loop.time() > deadline:
            return got
        await asyncio.sleep(0.05)


async def outbox_empty(timeout: float = 10.0) -> None:
    engine = create_async_engine(PG_URL)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            async with engine.connect() as connection:
                if not await connection.scalar(text("SELECT count(*) FROM outbox")):
                    return
            assert loop.time() < deadline, "the outbox did not empty"
            await asyncio.sleep(0.05)
    finally:
        await engine.dispose()


def sent_to(fake: FakeTelegramAPI, text: str) -> list[dict[str, object]]:
    return [call for call in fake.calls_to("sendMessage") if call.get("text") == text]


@pytest.mark.parametrize("backend", ["postgresql"])  # counted and never skipped where PostgreSQL is set
async def test_a_chat_across_two_workers(
    backend: str, workers: list[Worker], fake: FakeTelegramAPI, master_key_text: str, tmp_path: Path
) -> None:
    a, b = workers
    await add_counsellor(master_key_text, tmp_path, "tv-lan")
    lan = Counsellor(b, "tv-lan", PASSWORD)
    async with aiohttp.ClientSession() as http:
        try:
            await lan.sign_in()
            await lan.connect()
            assert (await lan.next_event("duty"))["on"] is True
            person = Person(fake, http, USER)
            await person.open_case(a)
            assert any("Đã mở cuộc trò chuyện" in text for text in person.received())
            handle = (await lan.next_event("case", state="waiting"))["case"]
            await lan.send({"type": "claim", "case": handle})
            await lan.next_event("done", action="claim", case=handle)
            joined = await received(person, ["Một tư vấn viên đã nhận"])
            assert joined, "the claim, written on B, reached the person on Telegram"

            # The person → the counsellor: posted to A, shown on B's socket, in order.
            said = ["em hỏi lần một", "em hỏi lần hai", "em hỏi lần ba"]
            for text in said:
                await person.says(a, text)
            shown = [await lan.next_event("message", case=handle, sender="person") for _ in said]
            assert [event["text"] for event in shown] == said
            assert [event["seq"] for event in shown] == sorted(event["seq"] for event in shown)
            assert all(str(USER) not in str(event) for event in shown), "no platform id on the counsellor's side"

            # The counsellor → the person: written on B, delivered by whichever worker, in order.
            answers = ["chị nghe đây", "em cứ nói tiếp nhé", "mình gặp ở trạm y tế được không"]
            for text in answers:
                await lan.send({"type": "send", "case": handle, "text": text})
            for _ in answers:
                await lan.next_event("done", action="send", case=handle)
            wanted = [f"Tư vấn viên: {text}" for text in answers]
            got = await received(person, wanted)
            assert got == wanted, "every answer once, in the order written"
            for text in wanted:
                calls = sent_to(fake, text)
                assert len(calls) == 1 and calls[0]["protect_content"] is True and str(calls[0]["chat_id"]) == str(USER)

            # Written, not delivered, and every worker killed: delivered once a worker runs again.
            # (First every delivery is noted as done: a row sent but not yet deleted when its
            # worker dies stays leased for a minute, and the person's next row waits behind it.)
            await outbox_empty()
            await asyncio.to_thread(a.kill)
            before = len(fake.calls_to("sendMessage"))
            fake.fail_next("sendMessage", 500)  # B's try fails: the row waits for its retry
            await lan.send({"type": "send", "case": handle, "text": "tin cuối trước khi tắt"})
            await lan.next_event("done", action="send", case=handle)
            await fake.wait_for_calls("sendMessage", before + 1, timeout=10)
            await asyncio.sleep(0.5)  # B notes the retry in the database
            await asyncio.to_thread(b.kill)
            last = "Tư vấn viên: tin cuối trước khi tắt"
            assert last not in person.received(), "not delivered before the kill"
        finally:
            await lan.close()
        await asyncio.to_thread(a.start)
        assert await received(person, [last], timeout=75) == [last]
        assert len(sent_to(fake, last)) == 2, "one failed try before the kill, one delivery after"
        assert person.received().count(last) == 1
        # After the restart the chat goes on across the workers as before.
        await asyncio.to_thread(b.start)
        lan = Counsellor(b, "tv-lan", PASSWORD)
        try:
            await lan.sign_in()
            await lan.connect()
            await lan.next_event("case", case=handle, state="open")
            await person.says(a, "em vẫn ở đây")
            # A new socket shows the transcript so far, then the new line.
            await lan.next_event("message", case=handle, text="em vẫn ở đây", sender="person")
            await lan.send({"type": "close", "case": handle, "outcome": "emotional_support"})
            await lan.next_event("case", case=handle, state="closed")
            for _ in range(200):
                if any("đã kết thúc trò chuyện" in text for text in person.received()):
                    break
                await asyncio.sleep(0.05)
            assert any("đã kết thúc trò chuyện" in text for text in person.received()), "the person is told"
        finally:
            await lan.close()
