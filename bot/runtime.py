"""Runs the engine for one inbound event inside one database transaction.

Per event: compute the pseudonym, load and open the person's record (if any), let the pure
engine decide, then store the new state or carry out the erasure, all in one transaction,
and render the replies. The person's text is never stored or logged.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError

from bot.bootstrap import Services
from bot.clock import today
from handlers.common import Outcome
from handlers.engine import respond
from handlers.render import RenderedReply
from handlers.state import DEFAULT_LOCALE, LOCALES, State
from handlers.types import EraseRecord, Inbound, Msg, Reply
from storage.crypto import UnknownKeyError
from storage.persons import erase_person, load_record, save_record

log = logging.getLogger("antam.runtime")


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

    async def handle(self, inbound: Inbound) -> list[RenderedReply]:
        """Answer one inbound event; return the rendered replies for the channel to send."""
        services = self.services
        pseudonym = services.secrets.pseudonym(inbound.channel, inbound.user_id)
        for attempt in range(3):
            try:
                async with services.db.transaction() as session:
                    ring = await services.keys.get(session, refresh=attempt > 0)
                    raw = await load_record(session, ring, pseudonym)
                    state = State.from_bytes(raw) if raw is not None else None
                    outcome = respond(state, inbound, services.context)
                    if any(isinstance(effect, EraseRecord) for effect in outcome.effects):
                        await erase_person(session, pseudonym)
                    elif outcome.state is not None:
                        await save_record(
                            session, ring, pseudonym, outcome.state.to_bytes(), today=today(services.clock)
                        )
                break
            except (UnknownKeyError, IntegrityError):
                # A rotation happened elsewhere, or the same new person wrote twice at once.
                if attempt == 2:
                    raise
        log.debug("answered", extra={"channel": inbound.channel, "intent": outcome.intent})
        return services.renderer.render(outcome)
