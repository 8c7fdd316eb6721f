"""Delivering the outbox: messages the bot starts (a counsellor's reply, a reminder).

``write`` puts a message in the outbox inside the caller's transaction, addressed with the
reply address sealed in the person's record (kept only while a feature needs it). Each worker
runs one ``OutboxWorker`` over the channels it holds: it leases due rows, sends them through
the channel's ``send``, and then deletes the row (delivered, unreachable, refused, or given up
after GIVE_UP) or moves it later with exponential backoff (5xx, 429, timeouts: ``Delivery.RETRY``,
or the platform's own retry-after).

Where a channel reaches a person only within a reply window after their last message, and only
so many messages per message of theirs (Zalo: ``Unprompted.IN_WINDOW``, ``reply_window``,
``started_per_message``), ``write`` queues nothing outside the window or beyond the quota
(counted as "outside_window" / "over_quota"), and the worker gives up a row whose window ended
while it waited (retries), counted as "outside_window". The time of the person's last message
and the count live sealed in their record; the row holds the window's end, sealed.

A worker wakes as soon as a row is written or done (in this process at once after the commit,
from other workers through PostgreSQL's NOTIFY, storage/outbox.py) and polls every
POLL_SECONDS as well, for a missed notification or rows written before a restart. It leases a
batch (at most one row per person, none while the person's earlier row is still on its way:
order is kept) and sends the batch's rows side by side, at most SEND_TOGETHER at once. The price
of the order: a worker killed between a send and its row's deletion leaves the row leased until
LEASE ends (it is then sent again: Telegram and Zalo cannot tell), and that person's next rows
wait behind it meanwhile.

The web chat reaches only pages open now: a worker leases a web-chat row only when the page is
open on it (rows are polled, so any worker holding the page takes it), and a row no worker
took within PAGE_WAIT is dropped, counted as "no_page".
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace

from bot import metrics
from bot.bootstrap import Services
from bot.channels.base import Channel, Delivery
from bot.channels.common import Pacer
from bot.channels.registry import capabilities
from bot.record import PersonRecord
from handlers.render import Capabilities, RenderedButton, RenderedReply, Unprompted, split_text
from handlers.types import ReplyKind
from storage import outbox
from storage.crypto import KeyRing
from storage.notify import Listener

LEASE = dt.timedelta(seconds=60)  # a send takes seconds; a killed worker's row is due again after this
FIRST_RETRY = dt.timedelta(seconds=5)
LAST_RETRY = dt.timedelta(minutes=30)
GIVE_UP = dt.timedelta(hours=24)
PAGE_WAIT = dt.timedelta(seconds=30)
POLL_SECONDS = 1.0
SEND_TOGETHER = 20  # rows of one batch in flight at once (each to another person): a whole claim batch

log = logging.getLogger("antam.outbox")


def to_rows(replies: list[RenderedReply]) -> list[dict[str, object]]:
    return [
        {"t": r.text, "b": [[b.label, b.payload] for b in r.buttons], "p": r.protect, "l": r.locale} for r in replies
    ]


def from_rows(rows: list[dict[str, object]]) -> list[RenderedReply]:
    replies = []
    for row in rows:
        buttons = tuple(RenderedButton(str(label), str(payload)) for label, payload in row.get("b", []))  # type: ignore[attr-defined]
        replies.append(RenderedReply(str(row["t"]), buttons, bool(row.get("p")), ReplyKind.MESSAGE, str(row.get("l", "vi"))))
    return replies


@dataclass(frozen=True, repr=False)
class Queued:
    """A queued message: its row, and the person's record to save in the same transaction (it
    counts the message against the channel's quota)."""

    row: int
    record: PersonRecord

    def __repr__(self) -> str:  # the record holds the address
        return f"Queued(row={self.row})"


def messages_of(replies: list[RenderedReply], can: Capabilities) -> int:
    """How many platform messages ``replies`` become once fitted to the channel (texts split at
    ``max_text``, buttons paged by ``max_buttons``): what the quota counts."""
    count = 0
    for reply in replies:
        count += len(split_text(reply.text, can.max_text))
        if reply.buttons and can.max_buttons:
            count += -(-len(reply.buttons) // can.max_buttons) - 1
    return count


async def write(
    session: outbox.Session,
    ring: KeyRing,
    record: PersonRecord,
    channel: str,
    replies: list[RenderedReply],
    *,
    now: dt.datetime,
) -> Queued | None:
    """Queue ``replies`` for the person of ``record``, in the caller's transaction; the caller
    saves the returned record.

    None when nothing may be sent, and nothing is written: no address is kept (the person opted
    into nothing that writes first), or the channel's reply window is over or its quota per
    message of the person's is used up (both counted).
    """
    if record.address is None:
        return None
    can = capabilities(channel)
    until = None
    if can.unprompted is Unprompted.IN_WINDOW and can.reply_window is not None:
        heard = record.heard_at()
        if heard is None or now >= heard + can.reply_window:
            metrics.OUTBOX.labels(channel, "outside_window").inc()
            return None
        until = heard + can.reply_window
    counted = record.started + messages_of(replies, can)
    if can.started_per_message is not None and counted > can.started_per_message:
        metrics.OUTBOX.labels(channel, "over_quota").inc()
        return None
    row = await outbox.enqueue(
        session, ring, channel=channel, address=record.address, replies=to_rows(replies), now=now, until=until
    )
    return Queued(row, replace(record, started=counted) if can.started_per_message is not None else record)


def backoff(attempts: int) -> dt.timedelta:
    """5 s, 10 s, 20 s … up to 30 minutes between tries."""
    return min(LAST_RETRY, FIRST_RETRY * (2 ** max(0, attempts - 1)))


class OutboxWorker:
    """Delivers the outbox rows of the channels this worker holds."""

    def __init__(self, services: Services, channels: Mapping[str, Channel], *, lease: dt.timedelta = LEASE) -> None:
        self.services = services
        self.channels = dict(channels)
        self.lease = lease
        # All people together, per channel (Telegram's ~30 messages a second overall).
        self.overall: dict[str, Pacer[str]] = {
            name: Pacer(burst=rate, per_second=rate)
            for name, channel in self.channels.items()
            if (rate := channel.capabilities.sends_per_second) is not None
        }
        self._woken = asyncio.Event()
        self._sending = asyncio.Semaphore(SEND_TOGETHER)

    def wake(self, channel: str = "") -> None:
        """Look at the outbox now (a row of ``channel`` was written or done; "" for any)."""
        if not channel or channel in self.channels:
            self._woken.set()

    def _accept(self, name: str, address: str) -> bool:
        return self.channels[name].reaches(address)

    async def run_once(self) -> int:
        """Deliver what is due now, batch after batch (a person's next row is due once their
        previous one is done); the number of rows handled."""
        handled = 0
        while claimed := await self._claim():
            # At most one row per person in a batch: sending side by side keeps each person's order.
            results = await asyncio.gather(*(self._deliver_in_turn(row) for row in claimed), return_exceptions=True)
            handled += len(claimed)
            for result in results:
                if isinstance(result, BaseException):
                    raise result  # the database went away: the rows not finished are due again after the lease
        return handled

    async def _claim(self) -> list[outbox.Claimed]:
        services = self.services
        now = services.clock.now()
        async with services.db.transaction() as session:
            await outbox.take_turn(session)  # before expired(): one worker at a time drops or leases
            ring = await services.keys.get(session)
            for name, channel in self.channels.items():
                if channel.capabilities.unprompted is Unprompted.WHILE_OPEN:
                    for _ in await outbox.expired(session, channel=name, before=now - PAGE_WAIT, now=now):
                        metrics.OUTBOX.labels(name, "no_page").inc()
            return await outbox.claim(
                session, ring, channels=list(self.channels), now=now, lease=self.lease, accept=self._accept
            )

    async def _deliver_in_turn(self, row: outbox.Claimed) -> None:
        async with self._sending:
            await self._deliver(row)

    async def _deliver(self, row: outbox.Claimed) -> None:
        channel = self.channels[row.channel]
        if row.until is not None and self.services.clock.now() >= row.until:
            # The reply window ended while the row waited (retries): the platform would refuse it.
            async with self.services.db.transaction() as session:
                await outbox.finish(session, row.id, row.channel)
            metrics.OUTBOX.labels(row.channel, "outside_window").inc()
            return
        if row.channel in self.overall:
            await self.overall[row.channel].wait(row.channel)
        try:
            sent = await channel.send(row.address, from_rows(row.replies), dedupe=row.dedupe)
        except Exception as exc:  # a bug or a transport error the adapter did not turn into a Sent
            log.error("outbox: sending failed: %s", type(exc).__name__)
            return  # the lease ends and the row is due again
        now = self.services.clock.now()
        async with self.services.db.transaction() as session:
            if sent.delivery is Delivery.RETRY and now - row.created_at < GIVE_UP:
                wait = backoff(row.attempts)
                if sent.retry_after is not None:
                    wait = max(wait, dt.timedelta(seconds=sent.retry_after))
                await outbox.postpone(session, row.id, now + wait)
                metrics.OUTBOX.labels(row.channel, "retried").inc()
                return
            await outbox.finish(session, row.id, row.channel)
        outcome = "given_up" if sent.delivery is Delivery.RETRY else sent.delivery.value
        metrics.OUTBOX.labels(row.channel, outcome).inc()
        if outcome == "given_up":
            log.warning("outbox: a %s message was given up after %d attempts", row.channel, row.attempts)

    async def run(self, *, poll: float = POLL_SECONDS) -> None:
        """Deliver until cancelled (the server's cleanup context does): at once when woken, and
        every ``poll`` seconds anyway."""
        engine = self.services.db.engine.sync_engine
        listener = Listener(self.services.db, outbox.NOTIFY_CHANNEL, self.wake)
        outbox.watch(engine, self.wake)
        try:
            await listener.start()
            while True:
                self._woken.clear()  # a wake-up from now on is seen after this round
                try:
                    await self.run_once()
                except Exception as exc:  # the database is away: try again at the next poll
                    log.error("outbox: could not read the outbox: %s", type(exc).__name__)
                # Woken meanwhile: at once; else at the next wake-up or poll.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._woken.wait(), poll)
        finally:
            outbox.unwatch(engine, self.wake)
            await listener.stop()
