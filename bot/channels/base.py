"""The channel protocol: what every channel adapter is to the server, the metrics and the pages.

A channel is one self-contained unit (one module or package under ``bot/channels/``): it turns
its platform's events into ``Inbound``, sends fitted replies, and says what it can do as
``Capabilities`` data. The server (``bot/app.py``) knows channels only through the registry
(``bot/channels/registry.py``) and this protocol; nothing else names a channel.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from aiohttp import web

from handlers.render import Capabilities, RenderedReply


class Delivery(StrEnum):
    """What became of a message the bot started (``Channel.send``)."""

    SENT = "sent"
    RETRY = "retry"  # 5xx, 429, a timeout: the platform may take it later
    UNREACHABLE = "unreachable"  # blocked, unfollowed, outside the reply window, no page open
    REFUSED = "refused"  # the platform said no for good (a bad request)


@dataclass(frozen=True)
class Sent:
    """The outcome of one ``send``: how it went and how long the platform asked us to wait."""

    delivery: Delivery
    retry_after: float | None = None


class Channel(Protocol):
    """One channel adapter as the server sees it."""

    name: str
    capabilities: Capabilities

    def add_routes(self, app: web.Application) -> None:
        """Add the channel's HTTP routes (a webhook, a page) to the one server."""

    def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        """Start on entering, stop on leaving: an aiohttp ``cleanup_ctx`` generator."""

    async def send(self, address: str, replies: Sequence[RenderedReply], *, dedupe: str) -> Sent:
        """Send replies the bot starts (not an answer) to ``address``, the person's reply address.

        ``dedupe`` is the outbox row's own key: a platform that can tell (Telegram cannot,
        Zalo cannot, the web page can) gets it so a message handed over twice is shown once.
        """
