"""The fake Telegram Bot API, driven by the real python-telegram-bot client, behaves like Telegram."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    MessageEntity,
    TelegramObject,
    Update,
)
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.ext import ApplicationBuilder, CommandHandler, ContextTypes, MessageHandler, filters

from tests.fakes.telegram_api import FakeTelegramAPI, TelegramAPIError, parse_html

TOKEN = "123456:TEST-token_abc"
USER = 4242


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegramAPI]:
    async with FakeTelegramAPI(token=TOKEN) as server:
        yield server


@pytest.fixture
async def bot(fake: FakeTelegramAPI) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=fake.base_url) as client:
        yield client


def keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton("Xét nghiệm HIV", callback_data="topic:hiv_test")],
            [InlineKeyboardButton("Trang web", url="https://example.org/antam")],
        ]
    )


def unknown_fields(obj: Any, path: str = "update") -> list[str]:
    """Every field PTB did not recognise (it lands in api_kwargs), anywhere in the object tree."""
    found: list[str] = []
    if isinstance(obj, TelegramObject):
        found += [f"{path}.{key}" for key in obj.api_kwargs]
        for name in obj._get_attrs_names(include_private=False):
            found += unknown_fields(getattr(obj, name, None), f"{path}.{name}")
    elif isinstance(obj, (list, tuple)):
        for index, item in enumerate(obj):
            found += unknown_fields(item, f"{path}[{index}]")
    return found


def contained(sent: Any, parsed: Any) -> bool:
    """Every key and value of ``sent`` survives in ``parsed`` (PTB adds default False flags)."""
    if isinstance(sent, dict):
        return isinstance(parsed, dict) and all(k in parsed and contained(v, parsed[k]) for k, v in sent.items())
    if isinstance(sent, list):
        return isinstance(parsed, list) and len(sent) == len(parsed) and all(map(contained, sent, parsed))
    return bool(sent == parsed)


async def test_server_listens_on_loopback_only(fake: FakeTelegramAPI) -> None:
    """The fake binds 127.0.0.1 and builds base_url as PTB expects it."""
    assert fake.url.startswith("http://127.0.0.1:")
    assert fake.base_url == f"{fake.url}/bot"
    assert fake.bound_addresses == [("127.0.0.1", int(fake.url.rsplit(":", 1)[1]))]


async def test_get_me_returns_the_configured_username(fake: FakeTelegramAPI, bot: Bot) -> None:
    """get_me answers the bot user with the configured username and id from the token."""
    me = await bot.get_me()
    assert me.username == "antam_test_bot"
    assert me.id == 123456
    assert me.is_bot is True
    assert me.can_join_groups is True
    assert me.supports_inline_queries is False
    assert unknown_fields(me) == []
    assert [call.method for call in fake.calls].count("getMe") == 2  # initialize() and ours


async def test_send_message_records_decoded_markup_and_protect_flag(fake: FakeTelegramAPI, bot: Bot) -> None:
    """send_message with an inline keyboard and protect_content is recorded decoded; ids increase."""
    fake.user_text(USER, "xin chào")  # message 1000, from the user
    first = await bot.send_message(USER, "Chào bạn", reply_markup=keyboard(), protect_content=True)
    second = await bot.send_message(USER, "Lần hai")
    assert (first.message_id, second.message_id) == (1001, 1002)
    sent = fake.sent_messages(USER)
    assert [params["text"] for params in sent] == ["Chào bạn", "Lần hai"]
    assert sent[0]["chat_id"] == USER
    assert sent[0]["protect_content"] is True
    assert sent[0]["reply_markup"] == keyboard().to_dict()
    assert sent[0]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "topic:hiv_test"
    assert "protect_content" not in sent[1] and "reply_markup" not in sent[1]
    assert first.reply_markup == keyboard()
    assert first.has_protected_content is True
    assert first.from_user is not None and first.from_user.username == "antam_test_bot"
    assert first.chat.type == "private" and first.chat.first_name == "Lan"
    assert abs(first.date.timestamp() - time.time()) < 5
    assert unknown_fields(first) == []


async def test_delete_messages_records_exactly_the_ids(fake: FakeTelegramAPI, bot: Bot) -> None:
    """delete_messages and delete_message record exactly the ids that were deleted, per chat."""
    fake.user_text(USER, "xin chào")
    fake.user_text(USER + 1, "chào")
    ids = [(await bot.send_message(USER, f"tin {n}")).message_id for n in range(4)]
    other = await bot.send_message(USER + 1, "khác")
    assert await bot.delete_messages(USER, [ids[0], ids[2]]) is True
    assert await bot.delete_message(USER, ids[3]) is True
    assert fake.calls_to("deleteMessages")[0]["message_ids"] == [ids[0], ids[2]]
    assert fake.deleted_ids(USER) == [ids[0], ids[2], ids[3]]
    assert fake.deleted_ids(USER + 1) == []
    assert fake.message(USER, ids[1]) is not None and fake.message(USER, ids[0]) is None
    assert fake.message(USER + 1, other.message_id) is not None
    with pytest.raises(BadRequest, match="(?i)message to delete not found"):
        await bot.delete_message(USER, ids[0])


async def test_set_webhook_with_secret_token_is_recorded(fake: FakeTelegramAPI, bot: Bot) -> None:
    """set_webhook records url, secret_token, allowed_updates and drop_pending_updates."""
    fake.user_text(USER, "cũ")
    url = "https://antam.example.org/webhooks/telegram"
    assert await bot.set_webhook(
        url, secret_token="s3cret_-Token", allowed_updates=["message", "callback_query"], drop_pending_updates=True
    )
    assert fake.webhook.url == url
    assert fake.webhook.secret_token == "s3cret_-Token"
    assert fake.webhook.allowed_updates == ["message", "callback_query"]
    assert fake.webhook.drop_pending_updates is True
    assert fake.pending_updates == []
    info = await bot.get_webhook_info()
    assert info.url == url and info.pending_update_count == 0
    assert info.allowed_updates == ("message", "callback_query")
    with pytest.raises(BadRequest, match="(?i)HTTPS URL"):
        await bot.set_webhook("http://127.0.0.1:8080/webhooks/telegram")
    with pytest.raises(BadRequest, match="(?i)secret token"):
        await bot.set_webhook(url, secret_token="not allowed!")
    assert await bot.delete_webhook() is True
    assert fake.webhook.url == "" and (await bot.get_webhook_info()).url == ""


async def test_set_my_commands_with_language_code_is_recorded(fake: FakeTelegramAPI, bot: Bot) -> None:
    """set_my_commands records the decoded commands under their language_code."""
    commands = [BotCommand("start", "Bắt đầu"), BotCommand("help", "Trợ giúp"), BotCommand("xoa", "Xoá dữ liệu")]
    assert await bot.set_my_commands(commands, language_code="vi") is True
    params = fake.calls_to("setMyCommands")[0]
    assert params["language_code"] == "vi"
    assert params["commands"] == [command.to_dict() for command in commands]
    assert fake.my_commands("vi") == params["commands"]
    assert fake.my_commands("") is None
    assert tuple(await bot.get_my_commands(language_code="vi")) == tuple(commands)
    with pytest.raises(BadRequest, match="(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand("Start", "Viết hoa")])


async def test_get_updates_returns_queued_text_and_offset_confirms_it(fake: FakeTelegramAPI, bot: Bot) -> None:
    """get_updates returns a queued user_text as an Update; an offset past it confirms it."""
    start_id = fake.next_update_id
    injected = fake.user_text(USER, "tôi muốn xét nghiệm", first_name="Minh")
    assert injected["update_id"] == start_id and fake.next_update_id == start_id + 1
    updates = await bot.get_updates(timeout=0)
    assert len(updates) == 1
    update = updates[0]
    assert isinstance(update, Update)
    assert update.update_id == start_id
    assert update.message is not None and update.message.text == "tôi muốn xét nghiệm"
    assert update.effective_user is not None and update.effective_user.id == USER
    assert update.effective_user.first_name == "Minh" and update.effective_user.language_code == "vi"
    assert update.effective_chat is not None and update.effective_chat.type == "private"
    assert await bot.get_updates(offset=start_id, timeout=0) == updates  # not yet confirmed
    assert await bot.get_updates(offset=start_id + 1, timeout=0) == ()
    assert fake.pending_updates == []
    assert fake.calls_to("getUpdates")[-1] == {"offset": start_id + 1, "timeout": 0}


async def test_get_updates_limit_and_negative_offset(fake: FakeTelegramAPI, bot: Bot) -> None:
    """limit caps the batch; a negative offset keeps only the newest updates."""
    injected = [fake.user_text(USER, f"tin {n}") for n in range(5)]
    batch = await bot.get_updates(limit=2, timeout=0)
    assert [update.update_id for update in batch] == [u["update_id"] for u in injected[:2]]
    newest = await bot.get_updates(offset=-1, timeout=0)
    assert [update.update_id for update in newest] == [injected[-1]["update_id"]]
    assert len(fake.pending_updates) == 1


async def test_long_poll_returns_promptly_when_an_update_is_queued(fake: FakeTelegramAPI, bot: Bot) -> None:
    """A getUpdates long poll (timeout=3) waits, then answers as soon as an update is queued."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    poll = asyncio.create_task(bot.get_updates(timeout=3))
    await asyncio.sleep(0.3)
    assert not poll.done()  # it really is waiting
    fake.user_text(USER, "đến rồi")
    updates = await asyncio.wait_for(poll, 2)
    elapsed = loop.time() - started
    assert 0.3 <= elapsed < 1.5
    assert [update.message.text for update in updates if update.message] == ["đến rồi"]


async def test_long_poll_without_updates_times_out_empty(fake: FakeTelegramAPI, bot: Bot) -> None:
    """A long poll with nothing queued answers an empty list after its timeout."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await bot.get_updates(timeout=1) == ()
    assert 0.9 <= loop.time() - started < 2.0


async def test_start_command_with_payload_parses_as_a_command(fake: FakeTelegramAPI, bot: Bot) -> None:
    """user_command("/start", payload) carries a bot_command entity; CommandHandler sees the args."""
    fake.user_command(USER, "/start", payload="abc_123")
    (update,) = await bot.get_updates(timeout=0)
    assert update.message is not None and update.message.text == "/start abc_123"
    assert update.message.entities == (MessageEntity(MessageEntity.BOT_COMMAND, 0, len("/start")),)

    async def callback(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        return None

    result = CommandHandler("start", callback).check_update(update)
    assert isinstance(result, tuple) and result[0] == ["abc_123"]
    assert CommandHandler("help", callback).check_update(update) is None


async def test_user_callback_carries_data_and_the_bot_message(fake: FakeTelegramAPI, bot: Bot) -> None:
    """user_callback queues a callback_query with data, from and the bot message it belongs to."""
    fake.user_text(USER, "chào")
    sent = await bot.send_message(USER, "Chọn chủ đề", reply_markup=keyboard())
    fake.user_callback(USER, "topic:hiv_test", sent.message_id)
    updates = await bot.get_updates(timeout=0)
    query = updates[-1].callback_query
    assert query is not None
    assert query.data == "topic:hiv_test"
    assert query.from_user.id == USER
    assert query.chat_instance
    assert query.message is not None and query.message.message_id == sent.message_id
    assert query.message.chat.id == USER
    assert assert_message_markup(query.message) == keyboard()
    assert await bot.answer_callback_query(query.id, text="Đã chọn") is True
    assert fake.answered_callbacks[query.id]["text"] == "Đã chọn"
    with pytest.raises(BadRequest, match="(?i)query ID is invalid"):
        await bot.answer_callback_query("123")
    with pytest.raises(LookupError):
        fake.user_callback(USER, "topic:x", 99_999)


def assert_message_markup(message: Any) -> InlineKeyboardMarkup | None:
    markup = getattr(message, "reply_markup", None)
    assert markup is None or isinstance(markup, InlineKeyboardMarkup)
    return markup


@pytest.mark.filterwarnings("ignore:.*retry_after.*:telegram.warnings.PTBDeprecationWarning")
async def test_fail_next_429_raises_retry_after(fake: FakeTelegramAPI, bot: Bot) -> None:
    """fail_next(429, retry_after=2) makes the next send_message raise RetryAfter(2), once."""
    fake.user_text(USER, "chào")
    fake.fail_next("sendMessage", error_code=429, retry_after=2)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(USER, "quá nhanh")
    retry_after = caught.value.retry_after
    seconds = retry_after.total_seconds() if isinstance(retry_after, dt.timedelta) else retry_after
    assert seconds == 2
    assert fake.sent_messages(USER) == []
    assert [params["text"] for params in fake.calls_to("sendMessage")] == ["quá nhanh"]
    assert (await bot.send_message(USER, "lại")).text == "lại"


async def test_fail_next_403_raises_forbidden(fake: FakeTelegramAPI, bot: Bot) -> None:
    """fail_next(403, blocked) raises Forbidden with Telegram's description; block() does it for good."""
    fake.user_text(USER, "chào")
    fake.fail_next("sendMessage", error_code=403, description="Forbidden: bot was blocked by the user")
    with pytest.raises(Forbidden, match="(?i)bot was blocked by the user"):
        await bot.send_message(USER, "x")
    fake.block(USER)
    with pytest.raises(Forbidden):
        await bot.send_chat_action(USER, "typing")
    fake.unblock(USER)
    assert await bot.send_chat_action(USER, "typing") is True


@pytest.mark.filterwarnings("ignore:.*retry_after.*:telegram.warnings.PTBDeprecationWarning")
async def test_failures_are_consumed_in_order(fake: FakeTelegramAPI, bot: Bot) -> None:
    """Queued failures answer one call each, in order (500 is a NetworkError), then calls succeed."""
    fake.user_text(USER, "chào")
    fake.fail_next("sendMessage", error_code=500)
    fake.fail_next("sendmessage", error_code=429, retry_after=1)
    with pytest.raises(NetworkError, match="(?i)Internal Server Error"):
        await bot.send_message(USER, "1")
    with pytest.raises(RetryAfter):
        await bot.send_message(USER, "2")
    assert (await bot.send_message(USER, "3")).text == "3"
    assert [params["text"] for params in fake.sent_messages(USER)] == ["3"]


async def test_a_wrong_token_is_rejected(fake: FakeTelegramAPI) -> None:
    """A well-formed token that is not the bot's gets 401, which PTB raises as InvalidToken."""
    with pytest.raises((InvalidToken, Forbidden)):
        async with Bot("999:WRONG", base_url=fake.base_url):
            pass
    assert fake.calls == []


async def test_unknown_method_is_not_found(fake: FakeTelegramAPI, bot: Bot) -> None:
    """A method the fake does not implement answers Telegram's 404 JSON."""
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{fake.base_url}{TOKEN}/sendTeleport", data={"chat_id": "1"}) as response:
            assert response.status == 404
            assert await response.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
        async with session.post(f"{fake.base_url}999:WRONG/getMe") as response:
            assert response.status == 401
            assert await response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}


async def test_application_initialize_and_shutdown(fake: FakeTelegramAPI) -> None:
    """A telegram.ext Application with updater(None) initialises against the fake with one getMe."""
    app = ApplicationBuilder().token(TOKEN).base_url(fake.base_url).updater(None).build()
    await app.initialize()
    try:
        assert app.bot.username == "antam_test_bot"
    finally:
        await app.shutdown()
    assert [call.method for call in fake.calls] == ["getMe"]


async def test_every_injected_update_is_a_valid_telegram_update(fake: FakeTelegramAPI, bot: Bot) -> None:
    """Every helper builds an Update PTB parses with no unknown field and that round-trips exactly."""
    first = fake.user_text(USER, "chào")
    bot_message = await bot.send_message(USER, "Chọn", reply_markup=keyboard())
    built = {
        "text": fake.user_text(USER, "hello /help", first_name="Lan", language_code="en"),
        "command": fake.user_command(USER, "start", payload="p_1"),
        "callback": fake.user_callback(USER, "topic:hiv_test", bot_message.message_id),
        "location": fake.user_location(USER, 21.0278, 105.8342),
        "sticker": fake.user_sticker(USER),
        "photo": fake.user_photo(USER, caption="ảnh"),
        "voice": fake.user_voice(USER),
        "document": fake.user_document(USER),
        "contact": fake.user_contact(USER, "84912345678"),
        "edited": fake.edited_text(USER, 1000, "chào lại"),
        "group": fake.group_text(-100200, USER, "/start@antam_test_bot"),
    }
    for name, data in built.items():
        update = Update.de_json(data, bot)
        assert unknown_fields(update) == [], name
        assert contained(data, update.to_dict()), name
    assert Update.de_json(built["location"], bot).message.location.latitude == 21.0278  # type: ignore[union-attr]
    assert Update.de_json(built["contact"], bot).message.contact.user_id == USER  # type: ignore[union-attr]
    assert Update.de_json(built["edited"], bot).edited_message.text == "chào lại"  # type: ignore[union-attr]
    group = Update.de_json(built["group"], bot)
    assert group.effective_chat is not None and group.effective_chat.type == "group"
    assert group.effective_chat.id == -100200
    assert built["text"]["message"]["entities"] == [{"offset": 6, "length": 5, "type": "bot_command"}]
    ids = [data["update_id"] for data in built.values()]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    delivered = await bot.get_updates(timeout=0)
    assert [update.update_id for update in delivered] == [first["update_id"], *ids]


async def test_message_ids_interleave_per_chat(fake: FakeTelegramAPI, bot: Bot) -> None:
    """User and bot messages share one counter per chat, from 1000, as in a Telegram chat."""
    assert fake.user_text(USER, "a")["message"]["message_id"] == 1000
    assert (await bot.send_message(USER, "b")).message_id == 1001
    assert fake.user_text(USER, "c")["message"]["message_id"] == 1002
    assert fake.user_text(USER + 1, "d")["message"]["message_id"] == 1000
    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.send_message(777, "never met")
    fake.add_user(777)
    assert (await bot.send_message(777, "now we have")).message_id == 1000


async def test_html_parse_mode_is_parsed_like_telegram(fake: FakeTelegramAPI, bot: Bot) -> None:
    """HTML text becomes plain text with UTF-16 entities; a stray '<' is rejected as by Telegram."""
    fake.user_text(USER, "chào")
    message = await bot.send_message(
        USER, '<b>Chào</b> 😀 <i>bạn</i> &amp; <a href="https://example.org/x">link</a>\n', parse_mode="HTML"
    )
    assert message.text == "Chào 😀 bạn & link"
    assert [(e.type, e.offset, e.length) for e in message.entities] == [
        ("bold", 0, 4),
        ("italic", 8, 3),
        ("text_link", 14, 4),
    ]
    assert message.entities[2].url == "https://example.org/x"
    assert fake.sent_messages(USER)[0]["text"].startswith("<b>Chào</b>")  # params stay as sent
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities: Unsupported start tag \"\" at byte offset 2"):
        await bot.send_message(USER, "1 < 2", parse_mode="HTML")
    with pytest.raises(BadRequest, match="(?i)Can't find end tag"):
        await bot.send_message(USER, "<b>mở", parse_mode="HTML")
    assert len(fake.sent_messages(USER)) == 1


@pytest.mark.parametrize(
    ("html", "text", "entities"),
    [
        (
            '<pre><code class="language-python">x = 1</code></pre>',
            "x = 1",
            [{"offset": 0, "length": 5, "type": "pre", "language": "python"}],
        ),
        (
            "<b>a <i>b</i></b>",
            "a b",
            [{"offset": 0, "length": 3, "type": "bold"}, {"offset": 2, "length": 1, "type": "italic"}],
        ),
        ('<span class="tg-spoiler">s</span>', "s", [{"offset": 0, "length": 1, "type": "spoiler"}]),
        ("<blockquote expandable>q</blockquote>", "q", [{"offset": 0, "length": 1, "type": "expandable_blockquote"}]),
        ("😀<u>x</u> &#65;&lt;&gt; AT&T", "😀x A<> AT&T", [{"offset": 2, "length": 1, "type": "underline"}]),
    ],
)
def test_html_parser_follows_telegram_rules(html: str, text: str, entities: list[dict[str, Any]]) -> None:
    """parse_html gives Telegram's text and UTF-16 entities for nested, pre/code and escaped input."""
    parsed_text, parsed_entities = parse_html(html)
    assert parsed_text == text
    assert [{k: v for k, v in e.items() if not k.startswith("_")} for e in parsed_entities] == entities


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler"'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("</b>", "Unexpected end tag at byte offset 0"),
        ("<b", "Unclosed start tag at byte offset 0"),
        ("Giá <100k>", 'Unsupported start tag "100k" at byte offset 5'),  # "á" is two bytes
    ],
)
def test_html_parser_rejects_bad_markup_like_telegram(html: str, error: str) -> None:
    """parse_html fails with Telegram's "can't parse entities" wording and byte offsets."""
    with pytest.raises(TelegramAPIError) as caught:
        parse_html(html)
    assert caught.value.error_code == 400
    assert caught.value.description.startswith("Bad Request: can't parse entities: " + error)


async def test_message_limits_are_enforced(fake: FakeTelegramAPI, bot: Bot) -> None:
    """Telegram's limits hold: non-empty text up to 4096, callback_data up to 64 bytes."""
    fake.user_text(USER, "chào")
    with pytest.raises(BadRequest, match="(?i)message text is empty"):
        await bot.send_message(USER, "   ")
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(USER, "ạ" * 4097)
    assert (await bot.send_message(USER, "ạ" * 4096)).text == "ạ" * 4096
    too_long = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="đ" * 33)]])
    with pytest.raises(BadRequest, match="(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(USER, "x", reply_markup=too_long)
    with pytest.raises(BadRequest, match="(?i)wrong parameter action"):
        await bot.send_chat_action(USER, "dancing")


async def test_edit_message_text_and_not_modified(fake: FakeTelegramAPI, bot: Bot) -> None:
    """edit_message_text returns the edited Message; the same content again is Telegram's 400."""
    fake.user_text(USER, "chào")
    sent = await bot.send_message(USER, "Trước", reply_markup=keyboard())
    edited = await bot.edit_message_text("Sau", chat_id=USER, message_id=sent.message_id)
    assert not isinstance(edited, bool)
    assert edited.text == "Sau" and edited.edit_date is not None and edited.reply_markup is None
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_text("Sau", chat_id=USER, message_id=sent.message_id)
    with pytest.raises(BadRequest, match="(?i)message can't be edited"):
        await bot.edit_message_text("X", chat_id=USER, message_id=1000)
    with pytest.raises(BadRequest, match="(?i)message to edit not found"):
        await bot.edit_message_text("X", chat_id=USER, message_id=5000)


async def test_get_chat_returns_full_info(fake: FakeTelegramAPI, bot: Bot) -> None:
    """get_chat answers a ChatFullInfo for a known chat and 'chat not found' otherwise."""
    fake.user_text(USER, "chào", first_name="Hoa")
    chat = await bot.get_chat(USER)
    assert chat.id == USER and chat.type == "private" and chat.first_name == "Hoa"
    assert unknown_fields(chat) == []
    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.get_chat(31337)


async def test_get_updates_conflicts(fake: FakeTelegramAPI, bot: Bot) -> None:
    """getUpdates is a 409 Conflict while a webhook is set, and when a newer poll replaces it."""
    await bot.set_webhook("https://antam.example.org/webhooks/telegram")
    with pytest.raises(Conflict, match="(?i)webhook is active"):
        await bot.get_updates(timeout=0)
    await bot.delete_webhook()
    older = asyncio.create_task(bot.get_updates(timeout=3))
    await asyncio.sleep(0.2)
    async with Bot(TOKEN, base_url=fake.base_url) as second_instance:  # PTB polls one request at a time
        assert await second_instance.get_updates(timeout=0) == ()
    with pytest.raises(Conflict, match="(?i)terminated by other getUpdates request"):
        await asyncio.wait_for(older, 2)


async def test_form_json_multipart_and_query_bodies_decode_alike(fake: FakeTelegramAPI) -> None:
    """The fake reads form-encoded, multipart, JSON and query parameters into the same typed values."""
    fake.user_text(USER, "chào")
    markup = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
    url = f"{fake.base_url}{TOKEN}/sendMessage"
    form = {"chat_id": str(USER), "text": "123", "protect_content": "true", "reply_markup": json.dumps(markup)}
    multipart = aiohttp.FormData(form)
    multipart.add_field("document", b"%PDF", filename="a.pdf", content_type="application/pdf")
    async with aiohttp.ClientSession() as session:
        as_json = {**form, "protect_content": True, "reply_markup": markup}
        for kwargs in ({"data": form}, {"data": multipart}, {"json": as_json}):
            async with session.post(url, **kwargs) as response:
                body = await response.json()
                assert response.status == 200, body
                assert body["result"]["reply_markup"] == markup
        async with session.get(url, params=form) as response:
            assert response.status == 200
    sent = fake.sent_messages(USER)
    assert len(sent) == 4
    for params in sent:
        assert params["chat_id"] == USER and params["text"] == "123" and params["protect_content"] is True
        assert params["reply_markup"] == markup
    assert sent[1]["document"].filename == "a.pdf" and sent[1]["document"].content == b"%PDF"


async def test_deliver_webhook_posts_json_with_the_secret(fake: FakeTelegramAPI, bot: Bot) -> None:
    """deliver_webhook POSTs the update as JSON with X-Telegram-Bot-Api-Secret-Token."""
    received: list[tuple[str | None, Any]] = []

    async def route(request: web.Request) -> web.Response:
        received.append((request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/webhooks/telegram", route)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        await bot.set_webhook("https://antam.example.org/webhooks/telegram", secret_token="abc-123")
        update = fake.user_text(USER, "qua webhook", enqueue=False)
        status = await fake.deliver_webhook(update, url=f"http://127.0.0.1:{port}/webhooks/telegram")
    finally:
        await runner.cleanup()
    assert status == 200
    assert received == [("abc-123", update)]
    assert fake.pending_updates == []


async def test_close_ends_a_pending_long_poll() -> None:
    """Closing the fake answers a pending long poll at once instead of leaving it hanging."""
    server = FakeTelegramAPI(token=TOKEN)
    await server.start()
    async with Bot(TOKEN, base_url=server.base_url) as client:
        loop = asyncio.get_running_loop()
        poll = asyncio.create_task(client.get_updates(timeout=3))
        await asyncio.sleep(0.2)
        started = loop.time()
        await server.close()
        try:
            result = await asyncio.wait_for(poll, 2)
        except NetworkError:
            result = ()
        assert loop.time() - started < 1.0
        assert result == ()


async def test_polling_application_answers_and_stops_cleanly(fake: FakeTelegramAPI) -> None:
    """A polling Application (deleteWebhook, getUpdates loop) answers an injected message and stops fast."""

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None and update.effective_message.text is not None
        await update.effective_message.reply_text(update.effective_message.text.upper())

    app = ApplicationBuilder().token(TOKEN).base_url(fake.base_url).build()
    app.add_handler(MessageHandler(filters.TEXT, echo))
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0, timeout=2)
    injected = fake.user_text(USER, "xin chào")
    (reply,) = await fake.wait_for_calls("sendMessage", timeout=3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await app.updater.stop()
    await app.stop()
    await app.shutdown()
    assert loop.time() - started < 1.5
    assert reply["chat_id"] == USER and reply["text"] == "XIN CHÀO"
    methods = [call.method for call in fake.calls]
    assert methods[:3] == ["getMe", "deleteWebhook", "getUpdates"]
    assert any(
        params.get("offset") == injected["update_id"] + 1 for params in fake.calls_to("getUpdates")
    ), "the update was confirmed"
