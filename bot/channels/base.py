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
from typing import TYPE_CHECKING, ClassVar, Protocol

from aiohttp import web

from bot.channels.common import KeyedLocks, Pacer
from handlers.render import Capabilities, RenderedReply

if TYPE_CHECKING:
    from bot.runtime import Runtime


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

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    def add_routes(self, app: web.Application) -> None:
        """Add the channel's HTTP routes (a webhook, a page) to the one server."""

    def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        """Start on entering, stop on leaving: an aiohttp ``cleanup_ctx`` generator."""

    def reaches(self, address: str) -> bool:
        """Whether this worker can deliver to ``address`` now (the web chat: its page is open here)."""

    async def send(self, address: str, replies: Sequence[RenderedReply], *, dedupe: str) -> Sent:
        """Send replies the bot starts (not an answer) to ``address``, the person's reply address.

        ``dedupe`` is the outbox row's own key: a platform that can tell (Telegram cannot,
        Zalo cannot, the web page can) gets it so a message handed over twice is shown once.
        """


class ChannelBase:
    """What every adapter shares: fitting to its capabilities, start/stop as a cleanup context,
    one lock and one pace per person, and ``send`` in terms of the adapter's ``deliver``."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        # One person's messages, answers and messages the bot starts alike, go out in order.
        self.locks: KeyedLocks[str] = KeyedLocks()
        self.pacer: Pacer[str] = Pacer(per_second=self.capabilities.sends_per_second_per_person or 1.0)

    def fit(self, replies: Sequence[RenderedReply]) -> list[RenderedReply]:
        """The replies cut and paged to this channel (``Renderer.fit``)."""
        return self.runtime.services.renderer.fit(list(replies), self.capabilities)

    def add_routes(self, app: web.Application) -> None:
        return None

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        await self.start()
        yield
        # Stop taking events and finish those in flight before the database closes.
        await self.stop()

    def reaches(self, address: str) -> bool:
        return True

    async def deliver(self, address: str, reply: RenderedReply) -> Sent:
        """Send one fitted message, once; how it went (the caller retries, not this)."""
        return Sent(Delivery.UNREACHABLE)

    async def send(self, address: str, replies: Sequence[RenderedReply], *, dedupe: str) -> Sent:
        async with self.locks.hold(address):
            for reply in self.fit(replies):
                await self.pacer.wait(address)
                sent = await self.deliver(address, reply)
                if sent.delivery is not Delivery.SENT:
                    return sent
        return Sent(Delivery.SENT)
