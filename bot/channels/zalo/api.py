"""The Zalo Open API client: one fitted reply → one ``message``, sent with retries and a fresh token.

Every failure is logged by its code only (never a body, which can quote a person's text or a
token) and reported as a ``Sent`` the caller can act on: retry later, give up, or stop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from bot.bootstrap import Services
from bot.channels.base import Delivery, Sent
from bot.channels.zalo.tokens import OAUTH_TIMEOUT, ZaloTokens
from handlers.render import RenderedButton, RenderedReply
from storage.channel_secrets import Tokens

SEND_PATH = "/v3.0/oa/message/cs"
OAUTH_PATH = "/v4/oa/access_token"
PAYLOAD_PREFIX = "#"
SEND_ATTEMPTS = 3
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)
# Zalo error codes (in a 200 body). Token: invalid / expired or removed. Unreachable: not
# following, banned or inactive, outside the reply window, restricted this message type.
TOKEN_ERRORS = frozenset({-216, -220, -124})
UNREACHABLE_ERRORS = frozenset({-213, -227, -230, -232, -244})
QUOTA_ERRORS = frozenset({-32, -211, -218})

log = logging.getLogger("antam.zalo")


def _button(button: RenderedButton) -> dict[str, str]:
    return {"title": button.label, "type": "oa.query.hide", "payload": PAYLOAD_PREFIX + button.payload}


def outgoing(reply: RenderedReply) -> dict[str, Any]:
    """The ``message`` object of one fitted reply, in the shape of Zalo's own SDK.

    ``{"text": …, "attachment": {"type": "template", "payload": {"buttons": […]}}}``; the
    renderer has already cut the text and paged the buttons to Zalo's limits.
    """
    message: dict[str, Any] = {"text": reply.text}
    if reply.buttons:
        message["attachment"] = {"type": "template", "payload": {"buttons": [_button(b) for b in reply.buttons]}}
    return message


class ZaloAPI:
    """Sends OA messages and refreshes the access token; one HTTP client for both."""

    def __init__(
        self, services: Services, *, app_id: str, app_secret: str, send_url: str, oauth_url: str, configured: Tokens | None
    ) -> None:
        self.services = services
        self.app_id, self._app_secret = app_id, app_secret
        self.send_url, self.oauth_url = send_url, oauth_url
        self.tokens = ZaloTokens(services, configured, self._refresh)
        self.retry_delay = 0.5
        self.sleep: Callable[[float], Any] = asyncio.sleep
        self._http: aiohttp.ClientSession | None = None

    def client(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=HTTP_TIMEOUT)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def send(self, user_id: str, message: dict[str, Any], *, attempts: int = SEND_ATTEMPTS) -> Sent:
        """Send one message, retrying 5xx and timeouts ``attempts`` times and a refused token once."""
        token = await self.tokens.get()
        if token is None:
            log.error("zalo: no usable access token; message not sent")
            return Sent(Delivery.RETRY)
        body = json.dumps({"recipient": {"user_id": user_id}, "message": message}, ensure_ascii=False).encode()
        renewed = False
        delay = self.retry_delay
        attempt = 0
        while True:
            attempt += 1
            status, error = await self._post_message(token, body)
            if status is None or status >= 500 or status == 429:
                if attempt < attempts:
                    await self.sleep(delay)
                    delay *= 2
                    continue
                log.error("zalo unreachable after %d attempts (%s)", attempt, status or "no answer")
                return Sent(Delivery.RETRY)
            if status >= 400:
                log.warning("zalo rejected a message: HTTP %d", status)
                return Sent(Delivery.REFUSED)
            if error == 0:
                return Sent(Delivery.SENT)
            if error in TOKEN_ERRORS and not renewed:
                renewed = True
                renewed_token = await self.tokens.renew(stale=token)
                if renewed_token is None:
                    log.error("zalo refused the access token (error %d) and no new one could be had", error)
                    return Sent(Delivery.RETRY)
                token = renewed_token
                continue
            if error in UNREACHABLE_ERRORS:
                log.info("zalo: the person cannot be reached now (error %d: outside the reply window?)", error)
                return Sent(Delivery.UNREACHABLE)
            if error in QUOTA_ERRORS:
                log.warning("zalo: message quota or rate limit reached (error %d)", error)
                return Sent(Delivery.RETRY)
            log.warning("zalo refused a message: error %s", "?" if error is None else error)
            return Sent(Delivery.REFUSED)

    async def _post_message(self, token: str, body: bytes) -> tuple[int | None, int | None]:
        headers = {"access_token": token, "Content-Type": "application/json; charset=utf-8"}
        try:
            async with self.client().post(self.send_url, data=body, headers=headers) as response:
                status = response.status
                if status >= 400:
                    return status, None
                data = await response.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            log.warning("zalo send failed: %s", type(exc).__name__)
            return None, None
        error = data.get("error") if isinstance(data, dict) else None
        # An answer without a numeric error code counts as a refusal ("error ?" in the log).
        return status, error if isinstance(error, int) and not isinstance(error, bool) else None

    async def _refresh(self, refresh_token: str) -> Tokens | None:
        """Trade a refresh token for a new pair; tried once, since a refresh token works only once."""
        form = {"refresh_token": refresh_token, "app_id": self.app_id, "grant_type": "refresh_token"}
        try:
            request = self.client().post(
                self.oauth_url, data=form, headers={"secret_key": self._app_secret}, timeout=OAUTH_TIMEOUT
            )
            async with request as response:
                status = response.status
                data = await response.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            log.error("zalo oauth failed: %s", type(exc).__name__)
            return None
        access = data.get("access_token") if isinstance(data, dict) else None
        refresh = data.get("refresh_token") if isinstance(data, dict) else None
        if status >= 400 or not isinstance(access, str) or not access or not isinstance(refresh, str) or not refresh:
            code = data.get("error") if isinstance(data, dict) else None
            shown = code if isinstance(code, int) else "?"
            log.error("zalo refused to refresh the access token (HTTP %d, error %s)", status, shown)
            return None
        try:
            seconds = float(data.get("expires_in", 0))  # a string, e.g. "90000"
        except (TypeError, ValueError):
            seconds = 0.0
        expires = self.services.clock.now() + dt.timedelta(seconds=seconds) if seconds > 0 else None
        return Tokens(access, refresh, expires)
