"""A fake Telegram Bot API server on aiohttp, for driving the real python-telegram-bot client.

It listens on 127.0.0.1 only (port 0: the OS picks one) and answers the subset of the Bot API
that An Tâm uses with Telegram's own JSON shapes and error texts. Point PTB at it with
``Bot(token, base_url=fake.base_url)`` or ``ApplicationBuilder().base_url(fake.base_url)``; PTB
appends the token and the method name (``{base_url}{token}/{method}``)::

    async with FakeTelegramAPI(token="123:ABC") as fake:
        fake.user_command(42, "/start", payload="abc_123")   # queued for getUpdates
        ...                                                   # run the bot against fake.base_url
        assert fake.sent_messages(42)[0]["text"] == "..."

How requests are read (as Telegram does): the query string, then a form-encoded, multipart or
JSON body. PTB sends every value as a string and JSON-encodes everything that is not a string
(numbers, booleans, and nested objects such as ``reply_markup``, ``commands``,
``message_ids``, ``entities``, ``link_preview_options``), so every parameter that Telegram does
not type as a string is JSON-decoded: ``chat_id`` "42" becomes 42, ``protect_content`` "true"
becomes True, ``reply_markup`` becomes a dict. Uploaded files become :class:`UploadedFile`.

Behaviour worth knowing when writing tests:

* Method names are case-insensitive, as on Telegram; ``calls`` records the canonical name.
* A well-formed token other than ours gets 401 "Unauthorized"; a malformed one gets 404, an
  unknown method 404 (PTB maps both to ``InvalidToken``). Requests with a wrong token are not
  recorded.
* Message ids count per chat from 1000, shared by the bot's and the user's messages.
* Sending to a chat the fake has never seen answers 400 "Bad Request: chat not found": inject a
  message from the user first, or call :meth:`FakeTelegramAPI.add_user`.
* ``parse_mode="HTML"`` is parsed like Telegram (tags become entities; a bad tag is a 400
  "can't parse entities"); Markdown modes are passed through unparsed. Text is trimmed and
  limited to 4096 UTF-16 code units; callback_data to 1–64 bytes.
* Only inline keyboards are echoed in the returned Message, as on Telegram; every markup is
  recorded in the call's params.
* setWebhook wants an HTTPS URL on port 443, 80, 88 or 8443, as Telegram does; use
  :meth:`FakeTelegramAPI.deliver_webhook` with ``url=`` to POST an update to a local server.
  A method named in the webhook's JSON answer is carried out, as Telegram does
  (:meth:`FakeTelegramAPI.webhook_answer`, for a test that posts updates itself).
* getUpdates answers 409 while a webhook is set, and a newer getUpdates ends an older pending
  one with 409, as Telegram does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, NamedTuple, Self
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

JSONDict = dict[str, Any]

HOST = "127.0.0.1"
FIRST_MESSAGE_ID = 1000
MAX_POLL_WAIT = 5.0
MAX_TEXT_LENGTH = 4096

_TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
_SECRET_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_BOT_COMMAND_IN_TEXT = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")

# Parameters Telegram types as String: kept verbatim. Every other value is JSON-decoded.
_STRING_FIELDS = frozenset(
    {
        "action", "address", "business_connection_id", "callback_query_id", "caption", "currency",
        "custom_title", "description", "emoji", "error_message", "explanation", "file_id",
        "first_name", "foursquare_id", "foursquare_type", "gift_id", "google_place_id",
        "google_place_type", "inline_message_id", "invite_link", "ip_address", "language_code",
        "last_name", "message_effect_id", "name", "parse_mode", "payload", "phone_number",
        "pre_checkout_query_id", "provider_token", "question", "result_id", "secret_token",
        "short_description", "shipping_query_id", "start_parameter", "sticker", "text", "title",
        "url", "vcard", "web_app_query_id", "photo", "document", "voice", "audio", "video",
        "animation", "video_note", "thumbnail",
    }
)

_CHAT_ACTIONS = frozenset(
    {
        "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
        "upload_document", "choose_sticker", "find_location", "record_video_note",
        "upload_video_note",
    }
)

_UPDATE_KINDS = (
    "message", "edited_message", "channel_post", "edited_channel_post", "business_connection",
    "business_message", "edited_business_message", "deleted_business_messages",
    "message_reaction", "message_reaction_count", "inline_query", "chosen_inline_result",
    "callback_query", "shipping_query", "pre_checkout_query", "purchased_paid_media", "poll",
    "poll_answer", "my_chat_member", "chat_member", "chat_join_request", "chat_boost",
    "removed_chat_boost",
)
# Delivered only when asked for by name in allowed_updates.
_OPT_IN_KINDS = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
    429: "Too Many Requests: retry after {retry_after}",
    500: "Internal Server Error",
    502: "Bad Gateway",
}

_NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the same as a "
    "current content and reply markup of the message"
)

_INLINE_BUTTON_ACTIONS = (
    "url", "callback_data", "web_app", "login_url", "switch_inline_query",
    "switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "copy_text",
    "callback_game", "pay",
)


class Call(NamedTuple):
    """One request the fake received: the canonical method name and its decoded parameters."""

    method: str
    params: JSONDict


class UploadedFile(NamedTuple):
    """A file part of a multipart request."""

    filename: str | None
    content_type: str
    content: bytes


@dataclass
class Webhook:
    """What setWebhook last recorded (``url`` is "" when no webhook is set)."""

    url: str = ""
    secret_token: str | None = None
    allowed_updates: list[str] | None = None
    drop_pending_updates: bool | None = None
    max_connections: int | None = None
    ip_address: str | None = None


@dataclass
class _Failure:
    error_code: int
    description: str
    parameters: JSONDict = field(default_factory=dict)


class TelegramAPIError(Exception):
    """Raised inside a method handler; becomes Telegram's error JSON with that HTTP status."""

    def __init__(self, error_code: int, description: str, parameters: JSONDict | None = None) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.parameters = parameters or {}


def _bad_request(detail: str) -> TelegramAPIError:
    return TelegramAPIError(400, f"Bad Request: {detail}")


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's entity offsets and limits."""
    return len(text.encode("utf-16-le")) // 2


# --------------------------------------------------------------------------------------------
# Request decoding


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def decode_value(name: str, value: Any) -> Any:
    """Decode one parameter the way Telegram types it (see the module docstring)."""
    if not isinstance(value, str) or name in _STRING_FIELDS:
        return value
    try:
        return json.loads(value, parse_constant=_reject_constant)
    except ValueError:
        return value


async def read_params(request: web.Request) -> JSONDict:
    """The query string merged with a form-encoded, multipart or JSON body, values decoded."""
    raw: JSONDict = dict(request.query)
    if request.content_type == "application/json":
        body = await request.read()
        if body.strip():
            try:
                data = json.loads(body)
            except ValueError as exc:
                raise _bad_request("can't parse JSON object") from exc
            if not isinstance(data, dict):
                raise _bad_request("JSON object expected")
            raw.update(data)
    elif request.body_exists:
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                raw[key] = UploadedFile(value.filename, value.content_type, value.file.read())
            else:
                raw[key] = value
    return {key: decode_value(key, value) for key, value in raw.items()}


# --------------------------------------------------------------------------------------------
# Telegram's HTML parse mode


_HTML_TAGS = frozenset(
    {"a", "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler",
     "tg-emoji", "code", "pre", "blockquote"}
)
_SIMPLE_TAG_ENTITY = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
    "ins": "underline", "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough",
    "tg-spoiler": "spoiler", "span": "spoiler",
}
_NAMED_HTML_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_ENTITY_RE = re.compile(r"&(?:#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6})|([A-Za-z]+));?")


def _html_entity(source: str, at: int) -> tuple[str, int] | None:
    match = _HTML_ENTITY_RE.match(source, at)
    if match is None:
        return None
    decimal, hexadecimal, name = match.groups()
    if name is not None:
        char = _NAMED_HTML_ENTITIES.get(name)
        if char is None:
            return None
        return char, match.end() - at
    code = int(decimal) if decimal is not None else int(hexadecimal, 16)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code), match.end() - at


def parse_html(source: str) -> tuple[str, list[JSONDict]]:
    """Telegram's HTML parse mode: the plain text and its entities, or a 400 as Telegram words it."""

    def fail(detail: str) -> TelegramAPIError:
        return _bad_request(f"can't parse entities: {detail}")

    def byte_offset(index: int) -> int:
        return len(source[:index].encode())

    out: list[str] = []
    position = 0  # in UTF-16 code units
    open_tags: list[tuple[str, str | None, int]] = []  # (tag, argument, start position)
    entities: list[JSONDict] = []
    i, size = 0, len(source)
    while i < size:
        char = source[i]
        if char == "&":
            decoded = _html_entity(source, i)
            if decoded is not None:
                out.append(decoded[0])
                position += utf16_len(decoded[0])
                i += decoded[1]
                continue
        if char != "<":
            out.append(char)
            position += utf16_len(char)
            i += 1
            continue
        tag_start = i
        i += 1
        if i < size and source[i] == "/":
            j = i + 1
            while j < size and not source[j].isspace() and source[j] != ">":
                j += 1
            name = source[i + 1 : j].lower()
            while j < size and source[j].isspace():
                j += 1
            if j >= size or source[j] != ">":
                raise fail(f"Unclosed end tag at byte offset {byte_offset(tag_start)}")
            if not open_tags:
                raise fail(f"Unexpected end tag at byte offset {byte_offset(tag_start)}")
            tag, closing_argument, start = open_tags.pop()
            if name and name != tag:
                raise fail(
                    f'Unmatched end tag at byte offset {byte_offset(tag_start)}, expected "</{tag}>", '
                    f'found "</{name}>"'
                )
            if position > start:
                _close_entity(entities, tag, closing_argument, start, position - start, "".join(out), fail)
            i = j + 1
            continue
        j = i
        while j < size and not source[j].isspace() and source[j] != ">":
            j += 1
        if j >= size:
            raise fail(f"Unclosed start tag at byte offset {byte_offset(tag_start)}")
        tag = source[i:j].lower()
        if tag not in _HTML_TAGS:
            raise fail(f'Unsupported start tag "{tag}" at byte offset {byte_offset(tag_start)}')
        attributes: dict[str, str] = {}
        while True:
            while j < size and source[j].isspace():
                j += 1
            if j >= size:
                raise fail(f'Unclosed start tag "{tag}" at byte offset {byte_offset(tag_start)}')
            if source[j] == ">":
                break
            name_start = j
            while j < size and not source[j].isspace() and source[j] not in "=>/\"'":
                j += 1
            attribute = source[name_start:j].lower()
            if not attribute:
                raise fail(f'Empty attribute name in the tag "{tag}" at byte offset {byte_offset(tag_start)}')
            while j < size and source[j].isspace():
                j += 1
            if j >= size or source[j] != "=":
                attributes[attribute] = ""
                continue
            j += 1
            while j < size and source[j].isspace():
                j += 1
            if j >= size:
                raise fail(f'Unclosed start tag "{tag}" at byte offset {byte_offset(tag_start)}')
            if source[j] in "\"'":
                quote = source[j]
                j += 1
                value: list[str] = []
                while j < size and source[j] != quote:
                    decoded = _html_entity(source, j) if source[j] == "&" else None
                    if decoded is not None:
                        value.append(decoded[0])
                        j += decoded[1]
                    else:
                        value.append(source[j])
                        j += 1
                if j >= size:
                    raise fail(f"Unclosed start tag at byte offset {byte_offset(tag_start)}")
                j += 1
                attributes[attribute] = "".join(value)
            else:
                value_start = j
                while j < size and (source[j].isalnum() or source[j] in ".-"):
                    j += 1
                if j < size and not source[j].isspace() and source[j] != ">":
                    raise fail(f"Unexpected end of name token at byte offset {byte_offset(value_start)}")
                attributes[attribute] = source[value_start:j].lower()
        argument: str | None = None
        if tag == "a":
            argument = attributes.get("href")
        elif tag == "code":
            css = attributes.get("class", "")
            argument = css.removeprefix("language-") if css.startswith("language-") else None
        elif tag == "span":
            if attributes.get("class") != "tg-spoiler":
                raise fail(f'Tag "span" must have class "tg-spoiler" at byte offset {byte_offset(tag_start)}')
        elif tag == "tg-emoji":
            argument = attributes.get("emoji-id")
        elif tag == "blockquote":
            argument = "expandable" if "expandable" in attributes else None
        open_tags.append((tag, argument, position))
        i = j + 1
    if open_tags:
        raise fail(f'Can\'t find end tag corresponding to start tag "{open_tags[-1][0]}"')
    entities.sort(key=lambda entity: (entity["offset"], -entity["length"]))
    return "".join(out), entities


def _close_entity(
    entities: list[JSONDict],
    tag: str,
    argument: str | None,
    offset: int,
    length: int,
    text_so_far: str,
    fail: Callable[[str], TelegramAPIError],
) -> None:
    span = {"offset": offset, "length": length}
    if tag in _SIMPLE_TAG_ENTITY:
        entities.append({**span, "type": _SIMPLE_TAG_ENTITY[tag]})
    elif tag == "a":
        url = argument
        if not url:  # <a>URL</a>: the text is the address
            url = text_so_far.encode("utf-16-le")[2 * offset : 2 * (offset + length)].decode("utf-16-le")
        entities.append({**span, "type": "text_link", "url": url})
    elif tag == "code":
        entities.append({**span, "type": "code", "_language": argument})
    elif tag == "pre":
        last = entities[-1] if entities else None
        if last is not None and last["type"] == "code" and (last["offset"], last["length"]) == (offset, length):
            entities.pop()
            language = last.get("_language")
            entities.append({**span, "type": "pre", **({"language": language} if language else {})})
        else:
            entities.append({**span, "type": "pre"})
    elif tag == "tg-emoji":
        if not argument or not argument.isdigit():
            raise fail("Invalid custom emoji identifier specified")
        entities.append({**span, "type": "custom_emoji", "custom_emoji_id": argument})
    elif tag == "blockquote":
        entities.append({**span, "type": "expandable_blockquote" if argument else "blockquote"})


def _trim(text: str, entities: list[JSONDict]) -> tuple[str, list[JSONDict]]:
    """Strip surrounding white space as Telegram does, clipping and shifting the entities."""
    stripped = text.strip()
    if not stripped:
        return "", []
    lead = utf16_len(text[: len(text) - len(text.lstrip())])
    end = lead + utf16_len(stripped)
    kept: list[JSONDict] = []
    for entity in entities:
        entity = {key: value for key, value in entity.items() if not key.startswith("_")}
        start, stop = max(entity["offset"], lead), min(entity["offset"] + entity["length"], end)
        if stop > start:
            kept.append({**entity, "offset": start - lead, "length": stop - start})
    kept.sort(key=lambda entity: (entity["offset"], -entity["length"]))
    return stripped, kept


def _detect_commands(text: str) -> list[JSONDict]:
    entities = []
    for match in _BOT_COMMAND_IN_TEXT.finditer(text):
        offset = utf16_len(text[: match.start()])
        entities.append({"offset": offset, "length": utf16_len(match.group()), "type": "bot_command"})
    return entities


# --------------------------------------------------------------------------------------------
# The server


Handler = Callable[[JSONDict], Awaitable[Any]]


class FakeTelegramAPI:
    """A Telegram Bot API server on 127.0.0.1 for one bot token; see the module docstring."""

    def __init__(
        self,
        token: str = "123:ABC",
        *,
        username: str = "antam_test_bot",
        first_name: str = "An Tâm",
        clock: Callable[[], float] = time.time,
        seed: int | None = None,
    ) -> None:
        if not _TOKEN_RE.match(token):
            raise ValueError("a bot token looks like 123456:ABC-def_0")
        self.token = token
        self.bot_user: JSONDict = {
            "id": int(token.split(":", 1)[0]),
            "is_bot": True,
            "first_name": first_name,
            "username": username,
        }
        self.clock = clock
        self._random = random.Random(seed)
        self.next_update_id: int = self._random.randint(100_000_000, 899_999_999)
        self.calls: list[Call] = []
        self.webhook = Webhook()
        self.commands: dict[tuple[str, str], list[JSONDict]] = {}
        self.answered_callbacks: dict[str, JSONDict] = {}
        self._updates: deque[JSONDict] = deque()
        self._failures: dict[str, deque[_Failure]] = {}
        self._users: dict[int, JSONDict] = {}
        self._chats: dict[int, JSONDict] = {}
        self._messages: dict[int, dict[int, JSONDict]] = {}
        self._last_message_id: dict[int, int] = {}
        self._deleted: dict[int, set[int]] = {}
        self._sent: list[tuple[int | str, JSONDict]] = []
        self._blocked: set[int] = set()
        self._open_callbacks: set[str] = set()
        self._chat_instances: dict[int, str] = {}
        self._update_event = asyncio.Event()
        self._call_event = asyncio.Event()
        self._poll_generation = 0
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._methods: dict[str, tuple[str, Handler]] = {
            name.lower(): (name, handler)
            for name, handler in {
                "getMe": self._get_me,
                "logOut": self._true,
                "close": self._true,
                "getUpdates": self._get_updates,
                "setWebhook": self._set_webhook,
                "deleteWebhook": self._delete_webhook,
                "getWebhookInfo": self._get_webhook_info,
                "setMyCommands": self._set_my_commands,
                "getMyCommands": self._get_my_commands,
                "deleteMyCommands": self._delete_my_commands,
                "sendMessage": self._send_message,
                "editMessageText": self._edit_message_text,
                "editMessageReplyMarkup": self._edit_message_reply_markup,
                "answerCallbackQuery": self._answer_callback_query,
                "deleteMessage": self._delete_message,
                "deleteMessages": self._delete_messages,
                "sendChatAction": self._send_chat_action,
                "getChat": self._get_chat,
            }.items()
        }

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on 127.0.0.1 on a port the OS picks."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        """Wake every pending long poll (it answers at once), then stop the server."""
        self._closing = True
        self._wake_pollers()
        self._call_event.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT"""
        if self._port is None:
            raise RuntimeError("the fake Telegram API is not running")
        return f"http://{HOST}:{self._port}"

    @property
    def bound_addresses(self) -> list[tuple[str, int]]:
        """The (host, port) pairs the server listens on: only 127.0.0.1."""
        if self._runner is None:
            return []
        return [(str(address[0]), int(address[1])) for address in self._runner.addresses]

    @property
    def base_url(self) -> str:
        """What TELEGRAM_API_BASE_URL / ApplicationBuilder.base_url is set to; PTB appends the token."""
        return f"{self.url}/bot"

    # ---- what the bot did --------------------------------------------------------------------

    def calls_to(self, method: str) -> list[JSONDict]:
        """The params of every call to ``method`` (any case), in order."""
        name = self._canonical(method)
        return [call.params for call in self.calls if call.method == name]

    def sent_messages(self, chat_id: int | str) -> list[JSONDict]:
        """The params of every sendMessage to ``chat_id`` that succeeded, in order."""
        return [params for chat, params in self._sent if chat == chat_id]

    def deleted_ids(self, chat_id: int) -> list[int]:
        """The ids of the messages deleted in ``chat_id``, sorted."""
        return sorted(self._deleted.get(chat_id, ()))

    def message(self, chat_id: int, message_id: int) -> JSONDict | None:
        """The stored (current) state of a message, or None when unknown or deleted."""
        return self._messages.get(chat_id, {}).get(message_id)

    def my_commands(self, language_code: str = "", scope: JSONDict | None = None) -> list[JSONDict] | None:
        """The commands setMyCommands recorded for that language and scope, or None."""
        return self.commands.get((_scope_key(scope), language_code))

    @property
    def pending_updates(self) -> list[JSONDict]:
        """The updates queued for getUpdates and not yet confirmed."""
        return list(self._updates)

    def clear_calls(self) -> None:
        """Forget the recorded calls and sent messages (not the chats and messages)."""
        self.calls.clear()
        self._sent.clear()

    async def wait_for_calls(self, method: str, count: int = 1, timeout: float = 5.0) -> list[JSONDict]:
        """Wait until ``method`` has been called ``count`` times; the params of those calls."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(found := self.calls_to(method)) < count:
            remaining = deadline - loop.time()
            if remaining <= 0 or self._closing:
                seen = [call.method for call in self.calls]
                raise TimeoutError(f"{method} called {len(found)} times, wanted {count}; calls: {seen}")
            event = self._call_event
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                pass
        return found[:count]

    # ---- failure injection and user state -----------------------------------------------------

    def fail_next(
        self,
        method: str,
        error_code: int = 500,
        description: str | None = None,
        *,
        retry_after: int | None = None,
        migrate_to_chat_id: int | None = None,
    ) -> None:
        """Make the next call of ``method`` fail like Telegram; queued failures are used in order."""
        if error_code == 429 and retry_after is None:
            retry_after = 1
        if description is None:
            template = _DEFAULT_DESCRIPTIONS.get(error_code, "Error")
            description = template.format(retry_after=retry_after)
        parameters: JSONDict = {}
        if retry_after is not None:
            parameters["retry_after"] = retry_after
        if migrate_to_chat_id is not None:
            parameters["migrate_to_chat_id"] = migrate_to_chat_id
        failure = _Failure(error_code, description, parameters)
        self._failures.setdefault(self._canonical(method), deque()).append(failure)

    def block(self, user_id: int) -> None:
        """The user blocks the bot: sends to them answer 403 until :meth:`unblock`."""
        self._blocked.add(user_id)

    def unblock(self, user_id: int) -> None:
        """The user restarts the bot."""
        self._blocked.discard(user_id)

    def add_user(
        self,
        user_id: int,
        first_name: str = "Lan",
        language_code: str | None = "vi",
        *,
        last_name: str | None = None,
        username: str | None = None,
    ) -> JSONDict:
        """Make a user (and their private chat) known without sending anything; the User dict."""
        if user_id <= 0:
            raise ValueError("user ids are positive")
        user: JSONDict = {"id": user_id, "is_bot": False, "first_name": first_name}
        if last_name is not None:
            user["last_name"] = last_name
        if username is not None:
            user["username"] = username
        if language_code is not None:
            user["language_code"] = language_code
        self._users[user_id] = user
        chat: JSONDict = {"id": user_id, "first_name": first_name}
        if last_name is not None:
            chat["last_name"] = last_name
        if username is not None:
            chat["username"] = username
        chat["type"] = "private"
        self._chats[user_id] = chat
        return dict(user)

    # ---- incoming traffic: each returns the Update dict, queued for getUpdates ----------------

    def user_text(
        self,
        user_id: int,
        text: str,
        first_name: str = "Lan",
        language_code: str | None = "vi",
        chat_type: str = "private",
        *,
        enqueue: bool = True,
    ) -> JSONDict:
        """The user sends ``text`` (bot commands in it get their entities, as on Telegram)."""
        self.add_user(user_id, first_name, language_code)
        chat = self._chat_for(user_id, chat_type)
        content: JSONDict = {"text": text}
        entities = _detect_commands(text)
        if entities:
            content["entities"] = entities
        return self._incoming_message(chat, user_id, content, enqueue)

    def user_command(
        self,
        user_id: int,
        command: str,
        payload: str | None = None,
        *,
        first_name: str | None = None,
        language_code: str | None = None,
        enqueue: bool = True,
    ) -> JSONDict:
        """The user sends ``/command`` or ``/command PAYLOAD`` (a deep link's /start payload)."""
        self._known_user(user_id, first_name, language_code)
        command = command if command.startswith("/") else f"/{command}"
        text = command if payload is None else f"{command} {payload}"
        entity = {"offset": 0, "length": utf16_len(command), "type": "bot_command"}
        return self._incoming_message(self._chats[user_id], user_id, {"text": text, "entities": [entity]}, enqueue)

    def user_callback(
        self,
        user_id: int,
        data: str,
        message_id: int,
        *,
        chat_id: int | None = None,
        first_name: str | None = None,
        language_code: str | None = None,
        enqueue: bool = True,
    ) -> JSONDict:
        """The user presses an inline button with ``data`` under bot message ``message_id``."""
        user = self._known_user(user_id, first_name, language_code)
        chat = user_id if chat_id is None else chat_id
        message = self.message(chat, message_id)
        if message is None:
            raise LookupError(f"no message {message_id} in chat {chat}: a callback needs the bot's message")
        query_id = str(self._random.randint(10**17, 10**19 - 1))
        self._open_callbacks.add(query_id)
        instance = self._chat_instances.setdefault(chat, str(self._random.randint(-(10**18), 10**18)))
        query = {"id": query_id, "from": user, "message": _copy(message), "chat_instance": instance, "data": data}
        return self._queue({"callback_query": query}, enqueue)

    def user_location(
        self, user_id: int, latitude: float, longitude: float, *, enqueue: bool = True
    ) -> JSONDict:
        """The user shares a location."""
        self._known_user(user_id)
        content = {"location": {"latitude": latitude, "longitude": longitude}}
        return self._incoming_message(self._chats[user_id], user_id, content, enqueue)

    def user_sticker(self, user_id: int, emoji: str = "👍", *, enqueue: bool = True) -> JSONDict:
        """The user sends a sticker."""
        self._known_user(user_id)
        sticker = {
            "width": 512,
            "height": 512,
            "emoji": emoji,
            "set_name": "HotCherry",
            "is_animated": False,
            "is_video": False,
            "type": "regular",
            "thumbnail": {**self._file_ids("AAMCAgAD"), "file_size": 5416, "width": 128, "height": 128},
            **self._file_ids("CAACAgIAAxkBAAE"),
            "file_size": 22448,
        }
        return self._incoming_message(self._chats[user_id], user_id, {"sticker": sticker}, enqueue)

    def user_photo(self, user_id: int, caption: str | None = None, *, enqueue: bool = True) -> JSONDict:
        """The user sends a photo (three sizes, as Telegram delivers them)."""
        self._known_user(user_id)
        sizes = [(90, 67, 1342), (320, 240, 17584), (800, 600, 71263)]
        photo = [
            {**self._file_ids("AgACAgUAAxkBAAE"), "file_size": size, "width": width, "height": height}
            for width, height, size in sizes
        ]
        content: JSONDict = {"photo": photo}
        if caption is not None:
            content["caption"] = caption
        return self._incoming_message(self._chats[user_id], user_id, content, enqueue)

    def user_voice(self, user_id: int, duration: int = 3, *, enqueue: bool = True) -> JSONDict:
        """The user sends a voice message."""
        self._known_user(user_id)
        voice = {
            "duration": duration,
            "mime_type": "audio/ogg",
            **self._file_ids("AwACAgUAAxkBAAE"),
            "file_size": 8000 * duration,
        }
        return self._incoming_message(self._chats[user_id], user_id, {"voice": voice}, enqueue)

    def user_document(
        self,
        user_id: int,
        file_name: str = "giay-xet-nghiem.pdf",
        mime_type: str = "application/pdf",
        caption: str | None = None,
        *,
        enqueue: bool = True,
    ) -> JSONDict:
        """The user sends a file."""
        self._known_user(user_id)
        document = {
            "file_name": file_name,
            "mime_type": mime_type,
            **self._file_ids("BQACAgUAAxkBAAE"),
            "file_size": 48213,
        }
        content: JSONDict = {"document": document}
        if caption is not None:
            content["caption"] = caption
        return self._incoming_message(self._chats[user_id], user_id, content, enqueue)

    def user_contact(
        self, user_id: int, phone: str, first_name: str | None = None, *, enqueue: bool = True
    ) -> JSONDict:
        """The user shares their own contact (``contact.user_id`` is theirs, as with request_contact)."""
        user = self._known_user(user_id)
        contact = {"phone_number": phone, "first_name": first_name or user["first_name"], "user_id": user_id}
        return self._incoming_message(self._chats[user_id], user_id, {"contact": contact}, enqueue)

    def edited_text(self, user_id: int, message_id: int, text: str, *, enqueue: bool = True) -> JSONDict:
        """The user edits their earlier message ``message_id`` to ``text`` (an edited_message)."""
        self._known_user(user_id)
        original = self.message(user_id, message_id)
        if original is None or original.get("from", {}).get("id") != user_id:
            raise LookupError(f"user {user_id} has no message {message_id} to edit")
        edited = {key: value for key, value in original.items() if key not in ("text", "entities", "edit_date")}
        edited["edit_date"] = self._now()
        edited["text"] = text
        entities = _detect_commands(text)
        if entities:
            edited["entities"] = entities
        self._messages[user_id][message_id] = edited
        return self._queue({"edited_message": _copy(edited)}, enqueue)

    def group_text(
        self, chat_id: int, user_id: int, text: str, *, title: str = "Nhóm bạn đồng đẳng", enqueue: bool = True
    ) -> JSONDict:
        """``user_id`` writes ``text`` in the group ``chat_id`` (negative)."""
        if chat_id >= 0:
            raise ValueError("group chat ids are negative")
        self._known_user(user_id)
        chat = self._chats.setdefault(chat_id, {"id": chat_id, "title": title, "type": _group_type(chat_id)})
        content: JSONDict = {"text": text}
        entities = _detect_commands(text)
        if entities:
            content["entities"] = entities
        return self._incoming_message(chat, user_id, content, enqueue)

    def queue_update(self, update: JSONDict) -> JSONDict:
        """Queue a hand-built update (its update_id is assigned here); returns it."""
        return self._queue({key: value for key, value in update.items() if key != "update_id"}, True)

    async def deliver_webhook(
        self, update: JSONDict, url: str | None = None, *, secret_token: str | None = None
    ) -> int:
        """POST ``update`` as Telegram does (JSON, secret header) to ``url`` or the webhook; the status."""
        target = url or self.webhook.url
        if not target:
            raise RuntimeError("no webhook is set and no url given")
        secret = secret_token if secret_token is not None else self.webhook.secret_token
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
        async with aiohttp.ClientSession() as session:
            async with session.post(target, json=update, headers=headers) as response:
                body = await response.read()
                await self.webhook_answer(response.status, response.content_type, body)
                return response.status

    async def webhook_answer(self, status: int, content_type: str, body: bytes) -> str | None:
        """Do what Telegram does with a webhook's answer: a 2xx JSON body naming a ``method`` is
        carried out as that Bot API call (recorded like one; its outcome is not reported back).
        Returns the method's name, or None when the answer asks for nothing.
        """
        if not 200 <= status < 300 or content_type != "application/json":
            return None
        try:
            params = json.loads(body)
        except ValueError:
            return None
        if not isinstance(params, dict) or not isinstance(params.get("method"), str):
            return None
        method = self._canonical(params.pop("method"))
        self.calls.append(Call(method, params))
        self._call_event.set()
        self._call_event = asyncio.Event()
        entry = self._methods.get(method.lower())
        if entry is not None:
            with contextlib.suppress(TelegramAPIError):
                await entry[1](params)
        return method

    # ---- HTTP --------------------------------------------------------------------------------

    async def _not_found(self, request: web.Request) -> web.Response:
        return _error_response(404, "Not Found")

    async def _handle(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        if token != self.token:
            if _TOKEN_RE.match(token):
                return _error_response(401, "Unauthorized")
            return _error_response(404, "Not Found")
        name = request.match_info["method"]
        try:
            params = await read_params(request)
        except TelegramAPIError as exc:
            return _error_response(exc.error_code, exc.description, exc.parameters)
        method = self._canonical(name)
        self.calls.append(Call(method, params))
        self._call_event.set()
        self._call_event = asyncio.Event()
        failures = self._failures.get(method)
        if failures:
            failure = failures.popleft()
            return _error_response(failure.error_code, failure.description, failure.parameters)
        entry = self._methods.get(method.lower())
        if entry is None:
            return _error_response(404, "Not Found")
        try:
            result = await entry[1](params)
        except TelegramAPIError as exc:
            return _error_response(exc.error_code, exc.description, exc.parameters)
        if isinstance(result, _Described):
            return _json_response({"ok": True, "result": result.result, "description": result.description})
        return _json_response({"ok": True, "result": result})

    def _canonical(self, method: str) -> str:
        entry = self._methods.get(method.lower())
        return entry[0] if entry else method

    # ---- methods -----------------------------------------------------------------------------

    async def _true(self, params: JSONDict) -> bool:
        return True

    async def _get_me(self, params: JSONDict) -> JSONDict:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, params: JSONDict) -> list[JSONDict]:
        if self.webhook.url:
            raise TelegramAPIError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = _optional_int(params, "offset")
        limit = min(max(_optional_int(params, "limit") or 100, 1), 100)
        timeout = max(_optional_int(params, "timeout") or 0, 0)
        allowed = params.get("allowed_updates")
        if allowed is not None and not isinstance(allowed, list):
            raise _bad_request("can't parse allowed updates")
        if offset is not None:
            if offset < 0:
                while len(self._updates) > -offset:
                    self._updates.popleft()
            else:
                while self._updates and self._updates[0]["update_id"] < offset:
                    self._updates.popleft()
        self._poll_generation += 1
        generation = self._poll_generation
        self._wake_pollers()  # an older long poll now ends with 409
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(timeout, MAX_POLL_WAIT)
        while True:
            found = [update for update in self._updates if _wanted(update, allowed)][:limit]
            if found or self._closing:
                return [_copy(update) for update in found]
            if generation != self._poll_generation:
                raise TelegramAPIError(409, _DEFAULT_DESCRIPTIONS[409])
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            event = self._update_event
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                pass

    async def _set_webhook(self, params: JSONDict) -> _Described:
        url = params.get("url")
        if not isinstance(url, str):
            raise _bad_request('parameter "url" is required')
        drop = params.get("drop_pending_updates")
        if url == "":
            return await self._delete_webhook(params)
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise _bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        if (parts.port or 443) not in (80, 88, 443, 8443):
            raise _bad_request("bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443")
        secret = params.get("secret_token")
        if secret is not None and not _SECRET_TOKEN_RE.match(str(secret)):
            raise _bad_request("secret token contains unallowed characters")
        max_connections = _optional_int(params, "max_connections")
        if max_connections is not None and not 1 <= max_connections <= 100:
            raise _bad_request("bad webhook: max_connections must be between 1 and 100")
        allowed = params.get("allowed_updates")
        if allowed is not None and not isinstance(allowed, list):
            raise _bad_request("can't parse allowed updates")
        already = self.webhook.url == url
        self.webhook = Webhook(
            url=url,
            secret_token=secret,
            allowed_updates=allowed,
            drop_pending_updates=drop,
            max_connections=max_connections if max_connections is not None else 40,
            ip_address=params.get("ip_address"),
        )
        if drop:
            self._updates.clear()
        self._wake_pollers()
        return _Described(True, "Webhook is already set" if already else "Webhook was set")

    async def _delete_webhook(self, params: JSONDict) -> _Described:
        was_set = bool(self.webhook.url)
        drop = params.get("drop_pending_updates")
        self.webhook = Webhook(drop_pending_updates=drop)
        if drop:
            self._updates.clear()
        return _Described(True, "Webhook was deleted" if was_set else "Webhook is already deleted")

    async def _get_webhook_info(self, params: JSONDict) -> JSONDict:
        info: JSONDict = {
            "url": self.webhook.url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self.webhook.url:
            if self.webhook.max_connections is not None:
                info["max_connections"] = self.webhook.max_connections
            if self.webhook.ip_address:
                info["ip_address"] = self.webhook.ip_address
            if self.webhook.allowed_updates:
                info["allowed_updates"] = self.webhook.allowed_updates
        return info

    async def _set_my_commands(self, params: JSONDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad_request('parameter "commands" is required')
        if len(commands) > 100:
            raise _bad_request("too many commands")
        for command in commands:
            if not isinstance(command, dict) or not _COMMAND_RE.match(str(command.get("command", ""))):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", "")).strip()) <= 256:
                raise _bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands[(_scope_key(params.get("scope")), str(params.get("language_code") or ""))] = commands
        return True

    async def _get_my_commands(self, params: JSONDict) -> list[JSONDict]:
        return self.commands.get((_scope_key(params.get("scope")), str(params.get("language_code") or "")), [])

    async def _delete_my_commands(self, params: JSONDict) -> bool:
        self.commands.pop((_scope_key(params.get("scope")), str(params.get("language_code") or "")), None)
        return True

    async def _send_message(self, params: JSONDict) -> JSONDict:
        chat = self._target_chat(params)
        text, entities = _formatted_text(params)
        markup = params.get("reply_markup")
        _check_markup(markup)
        message: JSONDict = {
            "message_id": self._next_message_id(chat["id"]),
            "from": dict(self.bot_user),
            "chat": dict(chat),
            "date": self._now(),
        }
        reply = params.get("reply_parameters")
        if isinstance(reply, dict) and isinstance(reply.get("message_id"), int):
            replied = self.message(_chat_id_of(reply.get("chat_id"), chat["id"]), reply["message_id"])
            if replied is not None:
                message["reply_to_message"] = {k: v for k, v in replied.items() if k != "reply_to_message"}
            elif not reply.get("allow_sending_without_reply"):
                raise _bad_request("message to be replied not found")
        message["text"] = text
        if entities:
            message["entities"] = entities
        if params.get("protect_content"):
            message["has_protected_content"] = True
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        self._messages.setdefault(chat["id"], {})[message["message_id"]] = message
        self._sent.append((params["chat_id"], params))
        return _copy(message)

    async def _edit_message_text(self, params: JSONDict) -> JSONDict | bool:
        text, entities = _formatted_text(params)
        markup = params.get("reply_markup")
        _check_markup(markup)
        if params.get("inline_message_id"):
            return True
        message = self._editable_message(params)
        inline = markup if isinstance(markup, dict) and "inline_keyboard" in markup else None
        same_text = message.get("text") == text and message.get("entities", []) == entities
        if same_text and message.get("reply_markup") == inline:
            raise _bad_request(_NOT_MODIFIED)
        message["text"] = text
        message.pop("entities", None)
        if entities:
            message["entities"] = entities
        _set_markup(message, inline)
        message["edit_date"] = self._now()
        return _copy(message)

    async def _edit_message_reply_markup(self, params: JSONDict) -> JSONDict | bool:
        markup = params.get("reply_markup")
        _check_markup(markup)
        if params.get("inline_message_id"):
            return True
        message = self._editable_message(params)
        inline = markup if isinstance(markup, dict) and "inline_keyboard" in markup else None
        if message.get("reply_markup") == inline:
            raise _bad_request(_NOT_MODIFIED)
        _set_markup(message, inline)
        message["edit_date"] = self._now()
        return _copy(message)

    async def _answer_callback_query(self, params: JSONDict) -> bool:
        query_id = params.get("callback_query_id")
        if not isinstance(query_id, str) or query_id not in self._open_callbacks:
            raise _bad_request("query is too old and response timeout expired or query ID is invalid")
        text = params.get("text")
        if isinstance(text, str) and len(text) > 200:
            raise _bad_request("MESSAGE_TOO_LONG")
        self._open_callbacks.discard(query_id)
        self.answered_callbacks[query_id] = params
        return True

    async def _delete_message(self, params: JSONDict) -> bool:
        chat = self._known_chat(params)
        message_id = _required_int(params, "message_id")
        message = self.message(chat["id"], message_id)
        if message is None:
            raise _bad_request("message to delete not found")
        if self._now() - message["date"] > 48 * 3600:
            raise _bad_request("message can't be deleted for everyone")
        self._forget(chat["id"], message_id)
        return True

    async def _delete_messages(self, params: JSONDict) -> bool:
        chat = self._known_chat(params)
        ids = params.get("message_ids")
        if not isinstance(ids, list) or not all(isinstance(item, int) and not isinstance(item, bool) for item in ids):
            raise _bad_request('parameter "message_ids" must be an array of integers')
        if not 1 <= len(ids) <= 100:
            raise _bad_request("too many messages to delete" if ids else "message identifiers are not specified")
        for message_id in ids:
            message = self.message(chat["id"], message_id)
            if message is not None and self._now() - message["date"] <= 48 * 3600:
                self._forget(chat["id"], message_id)
        return True

    async def _send_chat_action(self, params: JSONDict) -> bool:
        self._target_chat(params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise _bad_request("wrong parameter action in request")
        return True

    async def _get_chat(self, params: JSONDict) -> JSONDict:
        chat = self._known_chat(params)
        info: JSONDict = dict(chat)
        info.update(
            {
                "accent_color_id": chat["id"] % 7 if chat["id"] > 0 else 0,
                "max_reaction_count": 11,
                "accepted_gift_types": {
                    "unlimited_gifts": True,
                    "limited_gifts": True,
                    "unique_gifts": True,
                    "premium_subscription": True,
                    "gifts_from_channels": True,
                },
            }
        )
        return info

    # ---- internals ---------------------------------------------------------------------------

    def _now(self) -> int:
        return int(self.clock())

    def _wake_pollers(self) -> None:
        self._update_event.set()
        self._update_event = asyncio.Event()

    def _queue(self, body: JSONDict, enqueue: bool) -> JSONDict:
        update = {"update_id": self.next_update_id, **body}
        self.next_update_id += 1
        if enqueue:
            self._updates.append(update)
            self._wake_pollers()
        return _copy(update)

    def _file_ids(self, prefix: str) -> JSONDict:
        return {
            "file_id": prefix + secrets.token_urlsafe(36)[:48],
            "file_unique_id": "AgAD" + secrets.token_urlsafe(9)[:12],
        }

    def _known_user(self, user_id: int, first_name: str | None = None, language_code: str | None = None) -> JSONDict:
        user = self._users.get(user_id)
        if user is None or first_name is not None or language_code is not None:
            base = user or {}
            user = self.add_user(
                user_id,
                first_name or base.get("first_name", "Lan"),
                language_code or base.get("language_code", "vi"),
                last_name=base.get("last_name"),
                username=base.get("username"),
            )
        return dict(user)

    def _chat_for(self, user_id: int, chat_type: str) -> JSONDict:
        if chat_type == "private":
            return self._chats[user_id]
        if chat_type == "group":
            chat_id = -user_id
        elif chat_type == "supergroup":
            chat_id = -(10**12) - user_id
        else:
            raise ValueError("chat_type is private, group or supergroup (channels post, they do not message)")
        return self._chats.setdefault(chat_id, {"id": chat_id, "title": "Nhóm bạn đồng đẳng", "type": chat_type})

    def _incoming_message(self, chat: JSONDict, user_id: int, content: JSONDict, enqueue: bool) -> JSONDict:
        message: JSONDict = {
            "message_id": self._next_message_id(chat["id"]),
            "from": dict(self._users[user_id]),
            "chat": dict(chat),
            "date": self._now(),
            **content,
        }
        self._messages.setdefault(chat["id"], {})[message["message_id"]] = message
        return self._queue({"message": _copy(message)}, enqueue)

    def _next_message_id(self, chat_id: int) -> int:
        message_id = self._last_message_id.get(chat_id, FIRST_MESSAGE_ID - 1) + 1
        self._last_message_id[chat_id] = message_id
        return message_id

    def _known_chat(self, params: JSONDict) -> JSONDict:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _bad_request("chat_id is empty")
        chat = self._chats.get(chat_id) if isinstance(chat_id, int) and not isinstance(chat_id, bool) else None
        if chat is None:
            raise _bad_request("chat not found")
        return chat

    def _target_chat(self, params: JSONDict) -> JSONDict:
        chat = self._known_chat(params)
        if chat["id"] in self._blocked:
            raise TelegramAPIError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _editable_message(self, params: JSONDict) -> JSONDict:
        chat = self._known_chat(params)
        message = self.message(chat["id"], _required_int(params, "message_id"))
        if message is None:
            raise _bad_request("message to edit not found")
        if message["from"]["id"] != self.bot_user["id"]:
            raise _bad_request("message can't be edited")
        return message

    def _forget(self, chat_id: int, message_id: int) -> None:
        self._messages[chat_id].pop(message_id, None)
        self._deleted.setdefault(chat_id, set()).add(message_id)


@dataclass
class _Described:
    result: Any
    description: str


def _copy(value: JSONDict) -> JSONDict:
    copied: JSONDict = json.loads(json.dumps(value))
    return copied


def _json_response(body: JSONDict, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=lambda data: json.dumps(data, ensure_ascii=False))


def _error_response(error_code: int, description: str, parameters: JSONDict | None = None) -> web.Response:
    body: JSONDict = {"ok": False, "error_code": error_code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return _json_response(body, status=error_code)


def _optional_int(params: JSONDict, name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad_request(f'field "{name}" must be of type Integer')
    return value


def _required_int(params: JSONDict, name: str) -> int:
    value = _optional_int(params, name)
    if value is None:
        raise _bad_request(f'parameter "{name}" is required')
    return value


def _chat_id_of(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _group_type(chat_id: int) -> str:
    return "supergroup" if chat_id <= -(10**12) else "group"


def _scope_key(scope: Any) -> str:
    if not isinstance(scope, dict) or scope.get("type", "default") == "default":
        return "default"
    return json.dumps(scope, sort_keys=True)


def _wanted(update: JSONDict, allowed: list[Any] | None) -> bool:
    kind = next((key for key in _UPDATE_KINDS if key in update), None)
    if not allowed:
        return kind not in _OPT_IN_KINDS
    return kind in allowed


def _formatted_text(params: JSONDict) -> tuple[str, list[JSONDict]]:
    text = params.get("text")
    if not isinstance(text, str) or not text.strip():
        raise _bad_request("message text is empty")
    entities = params.get("entities")
    parse_mode = params.get("parse_mode")
    if isinstance(entities, list):
        text, parsed = text, [dict(entity) for entity in entities if isinstance(entity, dict)]
    elif parse_mode and str(parse_mode).lower() == "html":
        text, parsed = parse_html(text)
    elif parse_mode and str(parse_mode).lower() not in ("markdown", "markdownv2"):
        raise _bad_request(f"unsupported parse_mode {parse_mode!r}")
    else:
        parsed = []
    text, parsed = _trim(text, parsed)
    if not text:
        raise _bad_request("message text is empty")
    if utf16_len(text) > MAX_TEXT_LENGTH:
        raise _bad_request("message is too long")
    return text, parsed


def _check_markup(markup: Any) -> None:
    if markup is None:
        return
    if not isinstance(markup, dict):
        raise _bad_request("can't parse reply keyboard markup JSON object")
    rows = markup.get("inline_keyboard")
    if rows is None:
        return
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise _bad_request("can't parse inline keyboard button: field \"inline_keyboard\" must be an Array of Array")
    for button in _flatten(rows):
        if not isinstance(button, dict) or not isinstance(button.get("text"), str):
            raise _bad_request("can't parse inline keyboard button: Field \"text\" must be of type String")
        if not any(action in button for action in _INLINE_BUTTON_ACTIONS):
            raise _bad_request(
                "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
            )
        data = button.get("callback_data")
        if data is not None and not 1 <= len(str(data).encode()) <= 64:
            raise _bad_request("BUTTON_DATA_INVALID")


def _flatten(rows: Iterable[list[Any]]) -> Iterable[Any]:
    for row in rows:
        yield from row


def _set_markup(message: JSONDict, inline: JSONDict | None) -> None:
    message.pop("reply_markup", None)
    if inline is not None:
        message["reply_markup"] = inline
