"""A fake Zalo Official Account server: Open API v3 (consultation messages) and OAuth v4.

It listens on 127.0.0.1 only (port 0: the OS picks one). Point the bot's ``ZALO_API_BASE_URL``
and its OAuth base URL at ``fake.base_url``::

    async with FakeZaloAPI(app_id="123", oa_secret_key="s", access_token="a", refresh_token="r") as fake:
        body, headers = fake.signed(fake.text("8410", "xin chào"))   # a webhook event, signed
        ...                                                           # POST it to the bot
        assert fake.sent_to("8410")[0]["text"] == "..."

What it checks, as Zalo does (or as strictly as we know Zalo does):

* ``POST /v3.0/oa/message/cs``: the ``access_token`` header must be the current access token,
  unexpired (else HTTP 200 with ``{"error": -216, "message": "Access token is invalid"}``);
  the body must be exactly ``{"recipient": {"user_id": digits}, "message": {...}}`` where the
  message is ``{"text"}`` or ``{"text", "attachment": {"type": "template", "payload":
  {"buttons": [...]}}}`` — the shape of Zalo's own SDK — with 1–2,000 characters of text and
  1–5 buttons of type oa.query.hide / oa.query.show (payload: a string of 1–1,000 characters),
  oa.open.url (payload ``{"url"}``) or oa.open.phone (payload ``{"phone_code"}``), titles of
  1–100 characters. Anything else gets error -201 naming the field. A user who never sent an
  event gets -230 (outside the reply window).
* ``POST /v4/oa/access_token``: header ``secret_key`` (the app secret), form ``app_id``,
  ``grant_type=refresh_token`` and ``refresh_token``. Each refresh token works once: a spent one
  gets an error (and is recorded in ``reused_refresh_tokens``). A success returns a new access
  token and a new refresh token, ``expires_in`` "90000"; the previous access token stops working.
  The OAuth error codes here are illustrative (-14014 for a bad refresh token is seen in
  third-party code; the others are unverified).
* :meth:`FakeZaloAPI.fail_next` makes the next call(s) answer with an HTTP status or a Zalo
  error code (``QUOTA``, ``OUTSIDE_WINDOW``…).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import web

JSONDict = dict[str, Any]

HOST = "127.0.0.1"
SEND_PATH = "/v3.0/oa/message/cs"
OAUTH_PATH = "/v4/oa/access_token"
SIGNATURE_HEADER = "X-ZEvent-Signature"
EXPIRES_IN = 90_000
MAX_TEXT = 2000
MAX_BUTTONS = 5
MAX_TITLE = 100
MAX_QUERY_PAYLOAD = 1000

TOKEN_INVALID = -216
INVALID_PARAMETER = -201
QUOTA = -32
OUTSIDE_WINDOW = -230
REFRESH_TOKEN_INVALID = -14014
APP_SECRET_INVALID = -14002  # unverified code
OAUTH_PARAMETER_INVALID = -14001  # unverified code

ERROR_MESSAGES = {
    TOKEN_INVALID: "Access token is invalid",
    QUOTA: "Your application reached limit call api",
    OUTSIDE_WINDOW: "User has not interacted with the OA in the past 7 days",
}
BUTTON_TYPES = ("oa.query.hide", "oa.query.show", "oa.open.url", "oa.open.phone")


@dataclass
class Call:
    """One request the fake received (kind "send" or "oauth"), with its token and decoded body."""

    kind: str
    token: str | None
    body: JSONDict
    answer: JSONDict | None = None
    status: int = 200


@dataclass
class Sent:
    """A message the fake accepted."""

    user_id: str
    message: JSONDict
    message_id: str


@dataclass
class _Failure:
    status: int | None
    error: int | None
    message: str


@dataclass
class _Token:
    value: str
    expires_at: float


@dataclass
class FakeZaloAPI:
    app_id: str
    oa_secret_key: str
    access_token: str
    refresh_token: str
    app_secret_key: str | None = None  # the OAuth secret_key; the OA secret key when None
    oa_id: str = "4318459026128520719"
    clock: Callable[[], float] = time.time
    calls: list[Call] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    issued: list[tuple[str, str]] = field(default_factory=list)
    spent_refresh_tokens: set[str] = field(default_factory=set)
    reused_refresh_tokens: list[str] = field(default_factory=list)
    token_errors: int = 0

    def __post_init__(self) -> None:
        self._access = _Token(self.access_token, self.clock() + EXPIRES_IN)
        self._failures: dict[str, deque[_Failure]] = {"send": deque(), "oauth": deque()}
        self._users: set[str] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post(SEND_PATH, self._send)
        app.router.add_post(OAUTH_PATH, self._oauth)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    # ---- test controls -----------------------------------------------------------------------

    def fail_next(
        self, kind: str = "send", *, status: int | None = None, error: int | None = None, times: int = 1
    ) -> None:
        """Answer the next ``times`` calls of ``kind`` with an HTTP ``status`` or a Zalo ``error``."""
        if (status is None) == (error is None):
            raise ValueError("give either status or error")
        for _ in range(times):
            self._failures[kind].append(_Failure(status, error, ERROR_MESSAGES.get(error or 0, "error")))

    def revoke_access_token(self) -> None:
        """Make the current access token invalid (as when an admin revokes it)."""
        self._access = _Token("", 0)

    @property
    def current_access_token(self) -> str:
        return self._access.value

    def sent_to(self, user_id: str) -> list[JSONDict]:
        return [s.message for s in self.sent if s.user_id == user_id]

    def calls_to(self, kind: str) -> list[Call]:
        return [c for c in self.calls if c.kind == kind]

    @staticmethod
    def buttons(message: JSONDict) -> list[str]:
        """The payloads of a message's buttons."""
        attachment = message.get("attachment") or {}
        return [b["payload"] for b in attachment.get("payload", {}).get("buttons", [])]

    # ---- webhook events ----------------------------------------------------------------------

    def sign(self, body: bytes, *, secret: str | None = None) -> str:
        """The X-ZEvent-Signature value for a body (app_id and timestamp read from it)."""
        data = json.loads(body)
        text = str(data["app_id"]).encode() + body + str(data["timestamp"]).encode()
        return "mac=" + hashlib.sha256(text + (secret or self.oa_secret_key).encode()).hexdigest()

    def signed(self, event: JSONDict, *, secret: str | None = None) -> tuple[bytes, dict[str, str]]:
        """The body and headers Zalo would POST for ``event``."""
        body = json.dumps(event, ensure_ascii=False).encode()
        return body, {SIGNATURE_HEADER: self.sign(body, secret=secret), "Content-Type": "application/json"}

    def event(self, name: str, user_id: str, message: JSONDict | None = None, **extra: Any) -> JSONDict:
        """A user event (the person is ``sender``); the person now counts as having interacted."""
        self._users.add(user_id)
        event: JSONDict = {
            "app_id": self.app_id,
            "user_id_by_app": "55" + user_id[-10:],
            "event_name": name,
            "timestamp": str(int(self.clock() * 1000)),
            "sender": {"id": user_id},
            "recipient": {"id": self.oa_id},
        }
        if message is not None:
            event["message"] = {"msg_id": secrets.token_hex(16), **message}
        event.update(extra)
        return event

    def text(self, user_id: str, text: str) -> JSONDict:
        return self.event("user_send_text", user_id, {"text": text})

    def press(self, user_id: str, payload: str) -> JSONDict:
        """What Zalo posts when an oa.query.hide button is pressed: its payload as a text."""
        return self.text(user_id, payload)

    def location(self, user_id: str, latitude: float, longitude: float) -> JSONDict:
        coordinates = {"latitude": str(latitude), "longitude": str(longitude)}
        attachment = {"type": "location", "payload": {"coordinates": coordinates}}
        return self.event("user_send_location", user_id, {"text": "", "attachments": [attachment]})

    def image(self, user_id: str) -> JSONDict:
        url = f"https://photo.example.invalid/{secrets.token_hex(8)}.jpg"
        attachment = {"type": "image", "payload": {"thumbnail": url, "url": url}}
        return self.event("user_send_image", user_id, {"text": "", "attachments": [attachment]})

    def sticker(self, user_id: str) -> JSONDict:
        payload = {"id": secrets.token_hex(4), "url": "https://sticker.example.invalid/1"}
        attachment = {"type": "sticker", "payload": payload}
        return self.event("user_send_sticker", user_id, {"attachments": [attachment]})

    def follow(self, user_id: str) -> JSONDict:
        return self._follow_event("follow", user_id)

    def unfollow(self, user_id: str) -> JSONDict:
        return self._follow_event("unfollow", user_id)

    def oa_send_text(self, user_id: str, text: str) -> JSONDict:
        """The OA's own message (e.g. typed by an OA admin), echoed to the webhook."""
        return self._oa_event("oa_send_text", user_id, {"msg_id": secrets.token_hex(16), "text": text})

    def user_seen_message(self, user_id: str) -> JSONDict:
        return self._oa_event("user_seen_message", user_id, {"msg_ids": [secrets.token_hex(16)]})

    def user_received_message(self, user_id: str) -> JSONDict:
        return self._oa_event("user_received_message", user_id, {"msg_ids": [secrets.token_hex(16)]})

    def _follow_event(self, name: str, user_id: str) -> JSONDict:
        self._users.add(user_id)
        return {
            "app_id": self.app_id,
            "oa_id": self.oa_id,
            "user_id_by_app": "55" + user_id[-10:],
            "event_name": name,
            "timestamp": str(int(self.clock() * 1000)),
            "source": "oa_profile",
            "follower": {"id": user_id},
        }

    def _oa_event(self, name: str, user_id: str, message: JSONDict) -> JSONDict:
        return {
            "app_id": self.app_id,
            "event_name": name,
            "timestamp": str(int(self.clock() * 1000)),
            "sender": {"id": self.oa_id},
            "recipient": {"id": user_id},
            "message": message,
        }

    # ---- the API -----------------------------------------------------------------------------

    async def _send(self, request: web.Request) -> web.Response:
        token = request.headers.get("access_token")
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        call = Call("send", token, body if isinstance(body, dict) else {"raw": raw.decode("utf-8", "replace")})
        self.calls.append(call)
        failure = self._failures["send"].popleft() if self._failures["send"] else None
        if failure is not None and failure.status is not None:
            call.status = failure.status
            return web.json_response({"error": -1, "message": "Internal Server Error"}, status=failure.status)
        if failure is not None:
            return self._answer(call, {"error": failure.error, "message": failure.message})
        if not token or token != self._access.value or self.clock() >= self._access.expires_at:
            self.token_errors += 1
            return self._answer(call, {"error": TOKEN_INVALID, "message": ERROR_MESSAGES[TOKEN_INVALID]})
        invalid = invalid_field(body)
        if invalid is not None:
            return self._answer(call, {"error": INVALID_PARAMETER, "message": f"{invalid} is invalid!"})
        assert isinstance(body, dict)
        user_id = body["recipient"]["user_id"]
        if user_id not in self._users:
            return self._answer(call, {"error": OUTSIDE_WINDOW, "message": ERROR_MESSAGES[OUTSIDE_WINDOW]})
        message_id = secrets.token_hex(16)
        self.sent.append(Sent(user_id, body["message"], message_id))
        return self._answer(
            call, {"error": 0, "message": "Success", "data": {"message_id": message_id, "user_id": user_id}}
        )

    async def _oauth(self, request: web.Request) -> web.Response:
        form = await request.post()
        params = {k: v for k, v in form.items() if isinstance(v, str)}
        call = Call("oauth", request.headers.get("secret_key"), dict(params))
        self.calls.append(call)
        failure = self._failures["oauth"].popleft() if self._failures["oauth"] else None
        if failure is not None and failure.status is not None:
            call.status = failure.status
            return web.json_response({"error": -1}, status=failure.status)
        if failure is not None:
            return self._answer(call, _oauth_error(failure.error or -1, failure.message))
        if call.token != (self.app_secret_key or self.oa_secret_key):
            return self._answer(call, _oauth_error(APP_SECRET_INVALID, "Invalid secret key"))
        if params.get("grant_type") != "refresh_token" or params.get("app_id") != self.app_id:
            return self._answer(call, _oauth_error(OAUTH_PARAMETER_INVALID, "Invalid parameter"))
        given = params.get("refresh_token", "")
        if given in self.spent_refresh_tokens:
            self.reused_refresh_tokens.append(given)
        if given != self.refresh_token or given in self.spent_refresh_tokens:
            return self._answer(call, _oauth_error(REFRESH_TOKEN_INVALID, "Invalid refresh_token"))
        self.spent_refresh_tokens.add(given)
        number = len(self.issued) + 1
        access = f"zalo-access-{number}-{secrets.token_urlsafe(24)}"
        refresh = f"zalo-refresh-{number}-{secrets.token_urlsafe(24)}"
        self.issued.append((access, refresh))
        self._access = _Token(access, self.clock() + EXPIRES_IN)
        self.refresh_token = refresh
        return self._answer(call, {"access_token": access, "refresh_token": refresh, "expires_in": str(EXPIRES_IN)})

    @staticmethod
    def _answer(call: Call, body: JSONDict) -> web.Response:
        call.answer = body
        return web.json_response(body, dumps=lambda data: json.dumps(data, ensure_ascii=False))


def _oauth_error(code: int, reason: str) -> JSONDict:
    return {
        "error": code,
        "error_name": "Invalid parameter",
        "error_reason": reason,
        "error_description": reason,
        "ref_doc": "https://developers.zalo.me/docs/official-account/bat-dau/xac-thuc-va-uy-quyen-cho-ung-dung-new",
    }


def invalid_field(body: Any) -> str | None:
    """The first field that Zalo would refuse, or None for a valid consultation message."""
    if not isinstance(body, dict) or set(body) != {"recipient", "message"}:
        return "body"
    recipient = body["recipient"]
    if not isinstance(recipient, dict) or set(recipient) != {"user_id"}:
        return "recipient"
    if not isinstance(recipient["user_id"], str) or not recipient["user_id"].isdigit():
        return "user_id"
    message = body["message"]
    if not isinstance(message, dict) or not set(message) or not set(message) <= {"text", "attachment"}:
        return "message"
    text = message.get("text")
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        return "text"
    if "attachment" not in message:
        return None
    attachment = message["attachment"]
    if not isinstance(attachment, dict) or set(attachment) != {"type", "payload"} or attachment["type"] != "template":
        return "attachment"
    payload = attachment["payload"]
    if not isinstance(payload, dict) or set(payload) != {"buttons"}:
        return "payload"
    buttons = payload["buttons"]
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= MAX_BUTTONS:
        return "buttons"
    for button in buttons:
        if not isinstance(button, dict) or set(button) - {"image_icon"} != {"title", "type", "payload"}:
            return "button"
        title, kind, value = button["title"], button["type"], button["payload"]
        if not isinstance(title, str) or not 1 <= len(title) <= MAX_TITLE:
            return "title"
        if kind not in BUTTON_TYPES:
            return "type"
        if kind in ("oa.query.hide", "oa.query.show"):
            if not isinstance(value, str) or not 1 <= len(value) <= MAX_QUERY_PAYLOAD:
                return "payload"
        elif kind == "oa.open.url":
            if not isinstance(value, dict) or not str(value.get("url", "")).startswith(("https://", "http://")):
                return "payload"
        elif not isinstance(value, dict) or not str(value.get("phone_code", "")).strip():
            return "payload"
    return None
