"""The channel contract: what every channel does for a person, once for all channels.

Parametrised over the drivers in ``tests/channels/drivers.py`` (Telegram, Zalo, web chat,
console), each over its real adapter and its existing fake or socket. Channel differences are
read from the registry's capabilities, never from the driver's name.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot import metrics
from bot.channels.base import Delivery
from bot.channels.registry import capabilities
from bot.clock import FixedClock
from bot.config import Settings
from bot.logs import quiet_libraries
from bot.record import PersonRecord
from handlers.render import RenderedButton, RenderedReply, Unprompted
from storage.models import Person
from bot.outbox import PAGE_WAIT, write
from storage.outbox import pending
from storage.persons import load_record, save_record
from tests.channels.drivers import DRIVERS, Driver, Seen, open_driver


@pytest.fixture(params=DRIVERS)
async def person(request: pytest.FixtureRequest, settings: Settings, clock: FixedClock) -> AsyncIterator[Driver]:
    async with open_driver(request.param, settings, clock) as driver:
        yield driver


def texts(seen: list[Seen]) -> str:
    return "\n".join(s.text for s in seen)


def payloads(seen: list[Seen]) -> list[str]:
    return [p for s in seen for p in s.payloads]


async def stored(person: Driver) -> PersonRecord | None:
    services = person.services
    pseudonym = services.secrets.pseudonym(person.name, person.user)
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        raw = await load_record(session, ring, pseudonym, lock=False)
    return PersonRecord.from_bytes(raw) if raw is not None else None


async def consent(person: Driver) -> None:
    await person.say("/start")
    assert "Cảm ơn bạn" in texts(await person.press("c:accept"))


async def test_first_message_gets_the_consent_notice(person: Driver) -> None:
    """Whatever the first message, the answer carries the privacy notice and its choices."""
    first = await person.say("chào bạn")
    notice = person.services.renderer.catalogs.text("vi", "consent.notice", {"days": 180})
    assert notice[:60] in texts(first)
    assert {"c:accept", "c:decline"} <= set(payloads(first))
    assert await stored(person) is None, "nothing is stored before the notice is accepted"


async def test_a_redelivered_event_is_answered_once(person: Driver) -> None:
    """The platform delivering the same event twice gets one answer."""
    if not person.redelivers:
        pytest.skip(f"{person.name} never delivers an event twice")
    await consent(person)
    assert await person.say("menu")
    assert await person.again() == []


async def test_a_safety_message_is_answered_with_the_hotline_first(person: Driver) -> None:
    """The first reply to a message about danger carries the number to call, before any notice."""
    hotline = person.services.renderer.pack.shown_hotlines()[0].number
    first, *_ = await person.say("bị người yêu đánh, sợ quá")
    assert hotline in first.text


async def test_quick_exit_behaves_as_the_capabilities_say(person: Driver) -> None:
    """Where the channel deletes, one neutral line is all that is left; where it cannot, the
    neutral line says how to delete the chat by hand."""
    await consent(person)
    await person.say("xét nghiệm hiv ở đâu")
    (line, *rest) = await person.press("x")
    can = capabilities(person.name)
    neutral = person.services.renderer.catalogs.text("vi", "quickexit.neutral")
    if can.deletes:
        assert line.text == neutral and await person.screen() == [neutral]
    else:
        manual = person.services.renderer.catalogs.text("vi", can.delete_by_hand or "")
        assert line.text == f"{neutral}\n\n{manual}"
    assert rest == [] and line.payloads == ()


async def test_erasure_leaves_nothing(person: Driver) -> None:
    """/xoa then "có": the person's record is gone, and nobody else's appears in its place."""
    await consent(person)
    assert await stored(person) is not None
    assert "p:erase:yes" in payloads(await person.say("/xoa"))
    assert texts(await person.say("có")).startswith("Đã xóa toàn bộ dữ liệu")
    assert await stored(person) is None
    async with person.services.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Person)) == 0


async def test_no_text_or_platform_id_at_rest_or_in_logs(
    person: Driver, caplog: pytest.LogCaptureFixture
) -> None:
    """After a conversation, neither what the person typed nor their platform id is in a data
    file or a log line."""
    quiet_libraries()
    caplog.set_level(logging.DEBUG)
    typed = "Tôi tên là Nguyễn Thị Hoa ở Lào Cai"
    await consent(person)
    await person.say(typed)
    await person.press("x")
    data_dir: Path = person.services.settings.data_dir
    for path in (p for p in data_dir.rglob("*") if p.is_file()) if data_dir.exists() else ():
        content = path.read_bytes()
        for secret in (typed, "Nguyễn Thị Hoa", person.user):
            assert secret.encode() not in content, (path.name, secret)
    for secret in ("Nguyễn Thị Hoa", person.user):
        assert secret not in caplog.text


async def test_a_message_the_bot_starts_reaches_the_person(person: Driver) -> None:
    """``Channel.send`` reaches a person who wrote before, as far as the channel can reach anyone unprompted."""
    await consent(person)
    await person.pushed()  # what was answered so far
    line = RenderedReply("Tư vấn viên đã trả lời bạn.", (RenderedButton("Xem", "m"),))
    sent = await person.channel.send(person.user, [line], dedupe="outbox-1")
    if capabilities(person.name).unprompted is Unprompted.NEVER:
        assert sent.delivery is Delivery.UNREACHABLE and await person.pushed() == []
        return
    assert sent.delivery is Delivery.SENT
    assert await person.pushed() == [Seen("Tư vấn viên đã trả lời bạn.", ("m",))]


async def queue_reminder(person: Driver, text: str, *, due_in: dt.timedelta = dt.timedelta()) -> None:
    """The person opts into reminders (their address is kept, sealed in their record) and, in the
    same transaction, a reminder is written to the outbox, due ``due_in`` from now."""
    services = person.services
    pseudonym = services.secrets.pseudonym(person.name, person.user)
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        raw = await load_record(session, ring, pseudonym)
        assert raw is not None
        record = PersonRecord.from_bytes(raw).keep_address(person.user, "reminders")
        queued = await write(session, ring, record, person.name, [RenderedReply(text)], now=services.clock.now() + due_in)
        assert queued is not None
        await save_record(session, ring, pseudonym, queued.record.to_bytes(), today=services.clock.now().date())


async def left_in_outbox(person: Driver) -> int:
    async with person.services.db.transaction() as session:
        return await pending(session)


async def delivered(person: Driver, expected: int = 1) -> tuple[list[Seen], int]:
    """What the server's own outbox worker delivers: bounded (it polls every second, and deletes
    a row once sent), then a little longer to see that nothing comes twice."""
    got: list[Seen] = []
    left = 1
    for _ in range(40):
        got += await person.pushed()
        left = await left_in_outbox(person)
        if len(got) >= expected and not left:
            break
        await asyncio.sleep(0.25)
    await asyncio.sleep(1.5)  # more than one poll of the worker
    return got + await person.pushed(), await left_in_outbox(person)


async def test_a_queued_message_reaches_the_person(person: Driver) -> None:
    """A message written to the outbox with the change that causes it is delivered by the
    server's own outbox worker, and the row is gone."""
    if capabilities(person.name).unprompted is Unprompted.NEVER:
        pytest.skip(f"{person.name} cannot reach anyone unprompted")
    await consent(person)
    await person.pushed()
    await queue_reminder(person, "Nhắc bạn: lịch hẹn ngày mai.")
    assert await delivered(person) == ([Seen("Nhắc bạn: lịch hẹn ngày mai.")], 0)


async def test_a_queued_message_survives_a_restart(person: Driver) -> None:
    """A message queued while the server runs, the server stopped before delivering it and started
    again on the same database: delivered once after the restart, and its row deleted. Where the
    channel reaches only an open page, the page is opened again and the person speaks."""
    can = capabilities(person.name)
    if can.unprompted is Unprompted.NEVER:
        pytest.skip(f"{person.name} cannot reach anyone unprompted")
    await consent(person)
    await person.pushed()
    # Due one second from now: the fixed clock keeps the running server's worker off it until the
    # server is stopped, so the stop comes before delivery for certain.
    await queue_reminder(person, "Nhắc bạn: lịch hẹn ngày mai.", due_in=dt.timedelta(seconds=1))
    await asyncio.sleep(1.5)  # the running worker polled at least once and left it
    assert await person.pushed() == [] and await left_in_outbox(person) == 1
    await person.stop()
    person.clock.advance(seconds=2)
    await person.start()
    if can.unprompted is Unprompted.WHILE_OPEN:
        await person.say("menu")
    assert await delivered(person) == ([Seen("Nhắc bạn: lịch hẹn ngày mai.")], 0)


async def test_a_queued_message_for_a_closed_page_is_dropped_and_counted(person: Driver) -> None:
    """Where the channel reaches only an open page: after a restart with no page open again, the
    message is not delivered; it is dropped after PAGE_WAIT, counted as "no_page"."""
    if capabilities(person.name).unprompted is not Unprompted.WHILE_OPEN:
        pytest.skip(f"{person.name} does not depend on an open page")
    await consent(person)
    await person.pushed()
    await queue_reminder(person, "Nhắc bạn: lịch hẹn ngày mai.", due_in=dt.timedelta(seconds=1))
    await person.stop()
    before = counted(person.name, "no_page")
    person.clock.advance(seconds=PAGE_WAIT.total_seconds() + 2)
    await person.start()  # the page connects, but the person says nothing: no session is open
    for _ in range(40):  # bounded: the worker polls every second
        if not await left_in_outbox(person):
            break
        await asyncio.sleep(0.25)
    assert await left_in_outbox(person) == 0 and await person.pushed() == []
    assert counted(person.name, "no_page") == before + 1


async def test_the_reply_window_opens_with_each_message(person: Driver) -> None:
    """Where the channel has a reply window, the time of the person's last message is kept,
    sealed in their record only, and the quota begins again, less the answers it got."""
    await consent(person)
    first = await stored(person)
    assert first is not None
    if capabilities(person.name).reply_window is None:
        assert first.heard is None, "kept only where the channel needs it"
        return
    assert first.heard == int(person.clock.now().timestamp())
    person.clock.advance(seconds=90)
    answers = await person.say("menu")
    again = await stored(person)
    assert again is not None and again.heard == int(person.clock.now().timestamp())
    assert again.started == len(answers) > 0, "the answers count against the quota"


def counted(channel: str, outcome: str) -> float:
    return metrics.REGISTRY.get_sample_value("antam_outbox_total", {"channel": channel, "outcome": outcome}) or 0.0
