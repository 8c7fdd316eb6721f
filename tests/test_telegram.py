"""The Telegram channel end to end: the real python-telegram-bot client against a fake Bot API.

Webhook tests post updates to An Tâm's own aiohttp server (on 127.0.0.1) and check what the
bot then asked the fake Bot API to do; the polling test runs PTB's updater against the fake.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.app import channel_of, make_app
from bot.logs import quiet_libraries
from bot.bootstrap import Services, open_services
from bot.channels.telegram import RECENT_IDS, SECRET_HEADER, ChatPacer, WEBHOOK_PATH, TelegramChannel
from bot.clock import FixedClock
from bot.config import Settings
from bot.record import PersonRecord
from bot.runtime import Runtime
from storage.models import Person, ProcessedUpdate
from storage.persons import load_record
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.support.telegram import OTHER, PUBLIC_URL, TOKEN, USER, all_messages, bot_messages, buttons, post, telegram_settings


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegramAPI]:
    async with FakeTelegramAPI(token=TOKEN, seed=1) as api:
        yield api


@pytest.fixture
async def bot(
    settings: Settings, fake: FakeTelegramAPI, clock: FixedClock
) -> AsyncIterator[tuple[TestClient[Any, Any], Services]]:
    """An Tâm in webhook mode on 127.0.0.1, wired to the fake Bot API."""
    services = await open_services(telegram_settings(settings, fake, webhook=True), clock=clock, warn=lambda _m: None)
    app = make_app(services, maintenance=False)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        yield client, services
    finally:
        await client.close()
        await services.close()


async def press(client: TestClient[Any, Any], fake: FakeTelegramAPI, user: int, data: str) -> None:
    """Press the button with ``data`` on the newest bot message that has it."""
    message = next(m for m in reversed(bot_messages(fake, user)) if data in buttons(m))
    assert await post(client, fake.user_callback(user, data, message["message_id"], enqueue=False), fake=fake) == 200


async def say(client: TestClient[Any, Any], fake: FakeTelegramAPI, user: int, text: str) -> None:
    assert await post(client, fake.user_text(user, text, enqueue=False)) == 200


async def stored(services: Services, user: int) -> PersonRecord | None:
    pseudonym = services.secrets.pseudonym("telegram", str(user))
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        raw = await load_record(session, ring, pseudonym, lock=False)
    return PersonRecord.from_bytes(raw) if raw is not None else None


async def test_webhook_is_registered_with_secret_and_commands(
    bot: tuple[TestClient[Any, Any], Services], fake: FakeTelegramAPI
) -> None:
    """At start the bot registers its webhook with a secret token and its commands in Vietnamese."""
    client, _ = bot
    (call,) = fake.calls_to("setWebhook")
    assert call["url"] == PUBLIC_URL + WEBHOOK_PATH
    assert call["secret_token"] == channel_of(client.app, TelegramChannel).secret
    vietnamese = fake.my_commands("vi")
    assert vietnamese is not None and [c["command"] for c in vietnamese] == ["start", "menu", "thoat", "xoa", "trogiup"]
    assert vietnamese[2]["description"].startswith("Thoát nhanh")
    assert fake.my_commands("") == vietnamese, "the default list is Vietnamese too"
    english = fake.my_commands("en")
    assert english is not None and english[3]["description"] == "Erase my data"


async def test_wrong_secret_and_malformed_bodies(
    bot: tuple[TestClient[Any, Any], Services], fake: FakeTelegramAPI
) -> None:
    """A wrong or missing secret gets 403 before parsing; a malformed body gets 400; nothing is sent."""
    client, _ = bot
    update = fake.user_command(USER, "/start", enqueue=False)
    assert await post(client, update, secret="wrong") == 403
    response = await client.post(WEBHOOK_PATH, json=update)
    assert response.status == 403
    headers = {SECRET_HEADER: channel_of(client.app, TelegramChannel).secret}
    for body in (b"{not json", b"[]", b'{"update_id": "x"}', b"\xff\xfe"):
        response = await client.post(WEBHOOK_PATH, data=body, headers=headers)
        assert response.status == 400
    assert fake.sent_messages(USER) == []


def _mangled(update: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A deep copy of ``update`` with the field at ``path`` replaced by ``value``."""
    copy = json.loads(json.dumps(update))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy


async def test_authenticated_updates_with_wrong_types_are_dropped(
    bot: tuple[TestClient[Any, Any], Services], fake: FakeTelegramAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """Right secret, wrong field types: 200 (no redelivery), nothing reaches the engine, a warning without data."""
    client, services = bot
    text = fake.user_text(USER, "menu", enqueue=False)
    pressed = fake.user_callback(USER, "m", 1000, enqueue=False)
    wrong = [
        _mangled(text, ("message", "text"), 12345),
        _mangled(text, ("message", "from", "id"), str(USER)),
        _mangled(text, ("message", "chat"), [USER, "private"]),
        _mangled(text, ("message", "chat", "id"), {"id": USER}),
        _mangled(text, ("message", "message_id"), "1"),
        _mangled(text, ("message", "from"), "Lan"),
        _mangled(text, ("message", "from", "language_code"), 7),
        _mangled(text, ("message", "location"), {"latitude": "21.0", "longitude": 105.8}),
        _mangled(text, ("message", "location"), {"latitude": 123456789, "longitude": 105.8}),
        _mangled(pressed, ("callback_query", "data"), 42),
        _mangled(pressed, ("callback_query", "id"), 42),
    ]
    caplog.set_level(logging.WARNING, logger="antam.telegram")
    for number, update in enumerate(wrong):
        update["update_id"] = 900_000 + number
        assert await post(client, update) == 200, update
    assert fake.sent_messages(USER) == []
    async with services.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(ProcessedUpdate)) == 0, "the engine saw none"
    dropped = [r for r in caplog.records if "wrong type" in r.getMessage()]
    assert len(dropped) == len(wrong)
    assert all(str(USER) not in r.getMessage() and "Lan" not in r.getMessage() for r in caplog.records)
    assert await post(client, text) == 200
    assert len(fake.sent_messages(USER)) == 1, "a well-formed update is still answered"


async def test_conversation_with_inline_keyboards(
    bot: tuple[TestClient[Any, Any], Services], fake: FakeTelegramAPI
) -> None:
    """/start, consent and the menu work as in the console, rendered as inline keyboards."""
    client, services = bot
    assert await post(client, fake.user_command(USER, "/start", enqueue=False)) == 200
    (welcome,) = bot_messages(fake, USER)
    assert "quyền riêng tư" in welcome["text"]
    assert buttons(welcome)[:3] == ["c:accept", "c:decline", "c:more"]
    assert await stored(services, USER) is None, "nothing is stored before consent"
    await press(client, fake, USER, "c:accept")
    menu = bot_messages(fake, USER)[-1]
    assert {"i", "s", "e", "p", "x"} <= set(buttons(menu))
    assert await stored(services, USER) is not None
    assert fake.answered_callbacks, "callback queries are answered so the spinner stops"
    await press(client, fake, USER, "t:pep" if "t:pep" in buttons(menu) else "i")


async def test_sensitive_replies_are_protected(
    bot: tuple[TestClient[Any, Any], Services], fake: FakeTelegramAPI
) -> None:
    """Health and safety replies are sent with protect_content; the menu is not."""
    client, _ = bot
    await say(client, fake, USER, "bị thủng bao tối qua")
    pep = fake.sent_messages(USER)[-1]
    assert pep["protect_content"] is True and "72" in pep["text"]
    await say(client, fake, USER, "menu")
    assert not fake.sent_messages(USER)[-1].get("protect_content")


async def test_commune_and_location(bot: tuple[TestClient[Any, Any], Services], fake: FakeTelegramAPI) -> None:
    """Typing a commune lists its services; a shared location is answered by the engine."""
    client, _ = bot
    await post(client, fake.user_command(USER, "/start", enqueue=False))
    await press(client, fake, USER, "c:accept")
    await press(client, fake, USER, "s")
    await say(client, fake, USER, "binh lu")
    listing = fake.sent_messages(USER)[-1]
    assert "Trạm Y tế xã Bình Lư" in listing["text"] and listing["protect_content"] is True
    assert await post(client, fake.user_location(USER, 22.39, 103.46, enqueue=False)) == 200
    assert "tọa độ" in fake.sent_messages(USER)[-1]["text"]


async def test_deep_link_attribution(bot: tuple[TestClient[Any, Any], Services], fake: FakeTelegramAPI) -> None:
    """A peer link's code is kept only once the person accepts, inside their sealed record."""
    client, services = bot
    await post(client, fake.user_command(USER, "/start", payload="peer_Lan01", enqueue=False))
    assert buttons(bot_messages(fake, USER)[-1])[0] == "c:accept:peer_Lan01"
    assert await stored(services, USER) is None
    await press(client, fake, USER, "c:accept:peer_Lan01")
    record = await stored(services, USER)
    assert record is not None and record.state.peer == "peer_Lan01"
    # A decliner arriving by the same link leaves nothing behind.
    await post(client, fake.user_command(OTHER, "/start", payload="peer_Lan01", enqueue=False))
    await press(client, fake, OTHER, "c:decline")
    assert await stored(services, OTHER) is None


async def test_quick_exit_removes_the_conversation(
    bot: tuple[TestClient[Any, Any], Services], fake: FakeTelegramAPI
) -> None:
    """Quick exit deletes every message of the chat, the person's and the bot's, then leaves one neutral line."""
    client, services = bot
    await post(client, fake.user_command(USER, "/start", enqueue=False))
    await press(client, fake, USER, "c:accept")
    await say(client, fake, USER, "xét nghiệm hiv ở đâu")
    await press(client, fake, USER, "e")
    before = [m["message_id"] for m in all_messages(fake, USER)]
    assert len(before) >= 5
    record = await stored(services, USER)
    person = [m["message_id"] for m in all_messages(fake, USER) if m["from"]["id"] == USER]
    assert record is not None and {m for m, _ in record.messages} >= set(person[1:]), "the person's ids after consent"
    await press(client, fake, USER, "x")
    left = all_messages(fake, USER)
    assert len(left) == 1 and left[0]["text"] == "Đã xong." and not buttons(left[0])
    assert set(before) <= set(fake.deleted_ids(USER))
    for call in fake.calls_to("deleteMessages"):
        assert 1 <= len(call["message_ids"]) <= 100
    record = await stored(services, USER)
    assert record is not None and record.messages == (), "the ids are forgotten once used"


async def test_quick_exit_from_an_old_button_reaches_the_whole_chat(
    bot: tuple[TestClient[Any, Any], Services], fake: FakeTelegramAPI
) -> None:
    """Buttons pressed again and again on one old message: every reply since consent still goes.

    No reply id is ever noted (only the pressed message's), and there are more of them than
    the RECENT_IDS fallback reaches.
    """
    client, services = bot
    # Telegram's one-message-a-second pace per chat would make this test take minutes.
    channel_of(client.app, TelegramChannel).pacer = ChatPacer(burst=10_000)
    await post(client, fake.user_command(USER, "/start", enqueue=False))
    await press(client, fake, USER, "c:accept")
    await say(client, fake, USER, "menu")
    menu = bot_messages(fake, USER)[-1]
    first = buttons(menu)[0]
    for _ in range(RECENT_IDS + 20):
        assert await post(client, fake.user_callback(USER, first, menu["message_id"], enqueue=False)) == 200
    before = [m["message_id"] for m in all_messages(fake, USER)]
    assert before[-1] - before[0] > RECENT_IDS
    record = await stored(services, USER)
    assert record is not None and len(record.messages) <= 3, "a pressed message is noted once"
    assert await post(client, fake.user_callback(USER, "x", menu["message_id"], enqueue=False)) == 200
    left = all_messages(fake, USER)
    assert [m["text"] for m in left] == ["Đã xong."]
    calls = fake.calls_to("deleteMessages")
    assert all(1 <= len(call["message_ids"]) <= 100 for call in calls)
    assert max(calls[0]["message_ids"]) == left[0]["message_id"] - 1, "newest first"


async def test_quick_exit_works_with_nothing_stored(
    bot: tuple[TestClient[Any, Any], Services], fake: FakeTelegramAPI
) -> None:
    """Someone who never consented can still wipe the chat with /thoat."""
    client, services = bot
    await post(client, fake.user_command(USER, "/start", enqueue=False))
    await press(client, fake, USER, "c:decline")
    await say(client, fake, USER, "bị người yêu đánh")
    await post(client, fake.user_command(USER, "/thoat", enqueue=False))
    left = all_messages(fake, USER)
    assert [m["text"] for m in left] == ["Đã xong."]
    assert await stored(services, USER) is None


async def test_flood_control_and_blocked_user(
    bot: tuple[TestClient[Any, Any], Services], fake: FakeTelegramAPI
) -> None:
    """A 429 is waited out and the reply still arrives; a user who blocked the bot breaks nothing."""
    client, _ = bot
    fake.fail_next("sendMessage", error_code=429, retry_after=1)
    started = asyncio.get_running_loop().time()
    await say(client, fake, USER, "menu")
    assert asyncio.get_running_loop().time() - started >= 0.9
    assert len(fake.sent_messages(USER)) == 1
    fake.block(USER)
    assert await post(client, fake.user_text(USER, "menu", enqueue=False)) == 200
    fake.unblock(USER)
    fake.fail_next("sendMessage", error_code=500)
    await say(client, fake, USER, "menu")
    assert len(fake.sent_messages(USER)) == 2, "a 500 is retried"


async def test_media_edits_and_groups(bot: tuple[TestClient[Any, Any], Services], fake: FakeTelegramAPI) -> None:
    """Media gets a short text-only reply, a contact a privacy note, edits nothing; groups are declined."""
    client, services = bot
    for update in (fake.user_sticker(USER, enqueue=False), fake.user_photo(USER, enqueue=False), fake.user_voice(USER, enqueue=False)):
        await post(client, update)
        assert "chỉ đọc được tin nhắn chữ" in fake.sent_messages(USER)[-1]["text"]
    await post(client, fake.user_contact(USER, "+84912345678", enqueue=False))
    assert "không dùng và không lưu" in fake.sent_messages(USER)[-1]["text"]
    count = len(fake.sent_messages(USER))
    original = fake.user_text(USER, "chao", enqueue=False)
    await post(client, original)
    await post(client, fake.edited_text(USER, original["message"]["message_id"], "chào bạn", enqueue=False))
    assert len(fake.sent_messages(USER)) == count + 1, "an edited message is ignored"
    group = -100_555
    await post(client, fake.group_text(group, OTHER, "ai biết xét nghiệm ở đâu", enqueue=False))
    assert fake.sent_messages(group) == []
    await post(client, fake.group_text(group, OTHER, "/start@antam_test_bot", enqueue=False))
    assert "chỉ trò chuyện riêng" in fake.sent_messages(group)[-1]["text"]
    async with services.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Person)) == 0


async def test_button_press_is_answered_in_the_webhook_response(
    bot: tuple[TestClient[Any, Any], Services], fake: FakeTelegramAPI
) -> None:
    """With a webhook, the spinner of a pressed button is stopped by the route's own answer."""
    client, _ = bot
    await post(client, fake.user_command(USER, "/start", enqueue=False))
    notice = bot_messages(fake, USER)[-1]
    update = fake.user_callback(USER, "c:decline", notice["message_id"], enqueue=False)
    channel: TelegramChannel = channel_of(client.app, TelegramChannel)
    response = await client.post(WEBHOOK_PATH, json=update, headers={SECRET_HEADER: channel.secret})
    query_id = update["callback_query"]["id"]
    assert await response.json() == {"method": "answerCallbackQuery", "callback_query_id": query_id}
    assert not fake.calls_to("answerCallbackQuery"), "no request of its own"
    assert await fake.webhook_answer(response.status, response.content_type, await response.read()) == "answerCallbackQuery"
    assert query_id in fake.answered_callbacks, "the fake, like Telegram, accepts it"
    # A message (not a button) gets a plain answer.
    response = await client.post(WEBHOOK_PATH, json=fake.user_text(USER, "menu", enqueue=False), headers={SECRET_HEADER: channel.secret})
    assert response.status == 200 and response.content_type == "text/plain"


async def test_polling_mode(settings: Settings, fake: FakeTelegramAPI, clock: FixedClock) -> None:
    """Without a public URL the bot long-polls, answers (button presses too), and stops cleanly."""
    services = await open_services(telegram_settings(settings, fake, webhook=False), clock=clock, warn=lambda _m: None)
    channel = TelegramChannel(Runtime(services), services.settings)
    try:
        await channel.start()
        assert fake.calls_to("deleteWebhook"), "polling clears any webhook first"
        fake.user_command(USER, "/start")
        await fake.wait_for_calls("sendMessage", timeout=10)
        assert "quyền riêng tư" in fake.sent_messages(USER)[0]["text"]
        fake.user_callback(USER, "c:decline", bot_messages(fake, USER)[0]["message_id"])
        await fake.wait_for_calls("answerCallbackQuery", timeout=10)
        assert len(fake.answered_callbacks) == 1
    finally:
        await channel.stop()
        await services.close()
    assert not channel.application.running


async def test_no_trace_of_people_after_a_run(
    bot: tuple[TestClient[Any, Any], Services], fake: FakeTelegramAPI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """After a whole conversation no data file or log line holds a Telegram user id or typed text."""
    caplog.set_level(logging.DEBUG)
    quiet_libraries()  # as `antam run` configures logging
    client, services = bot
    typed = ["tôi tên Hoa Zyxw", "bị khách đánh ở nhà nghỉ Qwerty", "muốn xét nghiệm hiv Plokij"]
    await post(client, fake.user_command(USER, "/start", payload="peer_Lan01", enqueue=False))
    await press(client, fake, USER, "c:accept:peer_Lan01")
    for text in typed:
        await say(client, fake, USER, text)
    await post(client, fake.user_location(USER, 22.39, 103.46, enqueue=False))
    await client.close()
    await services.close()
    needles = [str(USER).encode(), *(t.encode() for t in typed), b"Zyxw", b"Qwerty", b"Plokij"]
    data_dir = services.settings.data_dir
    files = [p for p in data_dir.rglob("*") if p.is_file()] if data_dir.exists() else []
    for path in files:
        content = path.read_bytes()
        assert not any(n in content for n in needles), path.name
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert caplog.records
    assert str(USER) not in logged and not any(t in logged for t in ("Zyxw", "Qwerty", "Plokij", "Hoa"))


async def test_antam_run_polls_and_stops_on_sigterm(
    fake: FakeTelegramAPI, clean_env: dict[str, str], tmp_path: Path
) -> None:
    """`antam run` with a bot token long-polls, answers, and exits 0 on SIGTERM after stopping cleanly."""
    import signal
    import socket
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(
        clean_env,
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE_URL=fake.base_url,
        ANTAM_HTTP_PORT=str(port),
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", cwd=tmp_path, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        await fake.wait_for_calls("getUpdates", timeout=60)
        fake.user_command(USER, "/start")
        await fake.wait_for_calls("sendMessage", timeout=20)
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=30)
        _, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 0, stderr.decode()
    assert "quyền riêng tư" in fake.sent_messages(USER)[0]["text"]
    assert "Traceback" not in stderr.decode()
    polls = len(fake.calls_to("getUpdates"))
    await asyncio.sleep(1.5)
    assert len(fake.calls_to("getUpdates")) == polls, "no polling after the process stopped"


async def test_per_chat_pacing() -> None:
    """Each chat gets a burst of three, then about one message a second; chats do not wait on each other."""
    from bot.channels.telegram import ChatPacer

    now = [0.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    pacer = ChatPacer(clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        await pacer.wait(1)
    assert waits == []
    for _ in range(5):
        await pacer.wait(1)
    assert len(waits) == 5 and all(abs(w - 1.0) < 1e-9 for w in waits)
    assert now[0] == pytest.approx(5.0)
    await pacer.wait(2)
    assert len(waits) == 5, "another chat has its own allowance"


async def test_pacing_forgets_chats_once_their_allowance_is_back() -> None:
    """The pacer holds the chats of the last few seconds, not every chat it ever saw."""
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    pacer = ChatPacer(clock=lambda: now[0], sleep=sleep)
    for chat in range(1000):
        await pacer.wait(chat)
        now[0] += 0.01
    # One message each: back to a full burst 1 s later, so only the last second's chats remain.
    assert 90 <= len(pacer.buckets) <= 101
    now[0] += 5
    await pacer.wait(5000)
    assert len(pacer.buckets) == 1
    # A chat that is still pacing is kept, and keeps its pace.
    for _ in range(4):
        await pacer.wait(7)
    start = now[0]
    await pacer.wait(7)
    assert now[0] - start == pytest.approx(1.0)
