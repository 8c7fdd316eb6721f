"""Runs the engine for one inbound event inside one database transaction.

Per event: compute the pseudonym, skip an update already handled, load and open the
person's record (if any), let the pure engine decide, then store the new state or carry out
the erasure, all in one transaction, and render the replies. The person's text is never
stored or logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.bootstrap import Services
from bot.clock import today
from bot.record import PersonRecord
from handlers.common import Outcome
from handlers.engine import respond
from handlers.render import RenderedReply
from handlers.state import DEFAULT_LOCALE, LOCALES
from handlers.types import EraseRecord, Inbound, Msg, Reply
from storage.crypto import KeyRing, UnknownKeyError
from storage.persons import erase_person, load_record, save_record
from storage.updates import mark_processed

log = logging.getLogger("antam.runtime")
T = TypeVar("T")


class Runtime:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def answer(self, inbound: Inbound) -> list[RenderedReply]:
        """Answer one event; on any failure, log it without personal data and apologise."""
        try:
            return await self.handle(inbound)
        except Exception as exc:
            # Only the exception's type: its message or traceback could name a value.
            log.error("could not answer an update from %s: %s", inbound.channel, type(exc).__name__)
            return self.apology(inbound.locale_hint)

    def apology(self, locale_hint: str | None = None) -> list[RenderedReply]:
        """The reply sent when something failed: an apology with the emergency numbers."""
        hint = (locale_hint or "").split("-")[0].lower()
        locale = hint if hint in LOCALES else DEFAULT_LOCALE
        outcome = Outcome(None, (Reply((Msg("error.internal"),)),), locale=locale)
        return self.services.renderer.render(outcome)

    def update_key(self, inbound: Inbound) -> bytes | None:
        """A keyed hash of channel and update id: enough to spot a redelivery, nothing more."""
        if inbound.update_id is None:
            return None
        message = f"update:{inbound.channel}:{inbound.update_id}".encode()
        return hmac.new(self.services.secrets.pepper, message, hashlib.sha256).digest()[:16]

    async def handle(self, inbound: Inbound) -> list[RenderedReply]:
        """Answer one inbound event; return the rendered replies (none for a redelivery)."""
        services = self.services
        if not inbound.private:
            # Groups: one fixed answer, and nothing about anyone is read or written.
            return services.renderer.render(respond(None, inbound, services.context))
        pseudonym = services.secrets.pseudonym(inbound.channel, inbound.user_id)
        key = self.update_key(inbound)

        async def work(session: AsyncSession, ring: KeyRing) -> Outcome | None:
            now = services.clock.now()
            if key is not None and not await mark_processed(session, key, now=now):
                return None
            raw = await load_record(session, ring, pseudonym)
            record = PersonRecord.from_bytes(raw) if raw is not None else None
            outcome = respond(record.state if record else None, inbound, services.context)
            if any(isinstance(effect, EraseRecord) for effect in outcome.effects):
                await erase_person(session, pseudonym)
            elif outcome.state is not None:
                kept = record.fresh(now).messages if record else ()
                updated = PersonRecord(outcome.state, kept)
                await save_record(session, ring, pseudonym, updated.to_bytes(), today=today(services.clock))
            return outcome

        outcome = await self._transaction(work)
        if outcome is None:
            log.info("ignored a redelivered update from %s", inbound.channel)
            return []
        log.debug("answered", extra={"channel": inbound.channel, "intent": outcome.intent})
        return services.renderer.render(outcome)

    async def remember_messages(self, inbound: Inbound, message_ids: list[int]) -> None:
        """Note message ids of a consenting person's chat, for a later quick exit (no text)."""
        if not message_ids or not inbound.private:
            return
        await self._update_record(inbound, lambda record: record.with_messages(message_ids, self.services.clock.now()))

    async def take_messages(self, inbound: Inbound) -> list[int] | None:
        """Return and forget the tracked message ids; None when nothing is stored for the person."""
        taken: list[int] | None = None

        def take(record: PersonRecord) -> PersonRecord:
            nonlocal taken
            taken = [pair[0] for pair in record.fresh(self.services.clock.now()).messages]
            return PersonRecord(record.state, ())

        await self._update_record(inbound, take)
        return taken

    async def _update_record(self, inbound: Inbound, change: Callable[[PersonRecord], PersonRecord]) -> None:
        pseudonym = self.services.secrets.pseudonym(inbound.channel, inbound.user_id)

        async def work(session: AsyncSession, ring: KeyRing) -> None:
            raw = await load_record(session, ring, pseudonym)
            if raw is None:
                return
            updated = change(PersonRecord.from_bytes(raw))
            await save_record(session, ring, pseudonym, updated.to_bytes(), today=today(self.services.clock))

        await self._transaction(work)

    async def _transaction(self, work: Callable[[AsyncSession, KeyRing], Awaitable[T]]) -> T:
        """Run ``work`` in one transaction, retrying after a key rotation or a racing insert."""
        for attempt in range(3):
            try:
                async with self.services.db.transaction() as session:
                    ring = await self.services.keys.get(session, refresh=attempt > 0)
                    return await work(session, ring)
            except (UnknownKeyError, IntegrityError):
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")
