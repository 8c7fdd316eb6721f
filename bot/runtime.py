"""Runs the engine for one inbound event inside one database transaction.

Per event: compute the pseudonym, skip an update already handled, load and open the
person's record (if any), let the pure engine decide, then carry out its effects — store the
new state, issue or cancel a referral, add to the aggregate counters, or erase — all in one
transaction, and render the replies. The person's text is never stored or logged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from bot import metrics
from bot.admission import Gate
from bot.bootstrap import Services
from bot.channels.registry import BY_NAME
from babel.dates import format_datetime

from bot.clock import today
from bot.changes import CHANGES, COUNSELLING, line_note
from bot.record import PersonRecord
from counselling import cases
from content.pack import SAFETY_INTENTS
from handlers.common import MENU, QUICK_EXIT, Outcome
from handlers.counselling import IN_CHAT
from handlers.engine import respond
from handlers.referral import still_held
from handlers.render import BABEL_LOCALES, Capabilities, RenderedReply
from handlers.state import DEFAULT_LOCALE, LOCALES, State
from handlers.types import (
    CancelReferral,
    EndCase,
    Engaged,
    EraseRecord,
    HotlineList,
    Inbound,
    IssueReferral,
    Msg,
    OpenCase,
    RelayText,
    Reply,
    TurnFacts,
)
from referrals import codes, counting
from referrals.counters import apply_increments
from referrals.counting import Increment, Marks, Where
from referrals.indicators import Policy, load_policy
from referrals.peers import active_peer
from referrals.store import cancel_referral, insert_referral, orphan_referrals, usable
from storage.counselling import CasePerson
from storage.crypto import KeyRing
from storage.persons import erase_person, load_record, save_record
from storage.transactions import Attempt, run_in_transaction
from storage.updates import mark_processed

POLICY_REFRESH = dt.timedelta(seconds=60)
COUNSELLING_EFFECTS = (OpenCase, RelayText, EndCase)
# What the counsellor reads in the transcript when the bot answered a safety message itself.
BOT_NOTE = "An Tâm đã tự gửi thông tin an toàn ({intent})."
# What the engine answers in full when the database does not: every answer it marks urgent
# (a danger cue or a safety intent: numbers or the 72-hour PEP message first), the emergency
# menu, and quick exit (hiding the chat must not wait for a database). The engine is pure, so
# these need nothing stored.
ANSWERED_WITHOUT_DATABASE = SAFETY_INTENTS | {"button:e", "quick_exit", "button:x"}


def database_unavailable(exc: BaseException) -> bool:
    """The database could not be reached (as opposed to a bug or bad data)."""
    if isinstance(exc, (OSError, TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)

log = logging.getLogger("antam.runtime")
T = TypeVar("T")


class Runtime:
    def __init__(self, services: Services) -> None:
        self.services = services
        self._policy: Policy | None = None
        self._policy_at = dt.datetime.min.replace(tzinfo=dt.UTC)

    async def answer(self, inbound: Inbound, *, gate: Gate | None = None) -> list[RenderedReply]:
        """Answer one event; on any failure, log it without personal data and apologise.

        ``gate``: the limits of the address block the event came from (web chat; bot/admission.py).
        When the database is down or does not answer within ANTAM_DB_TIMEOUT_SECONDS, the
        answer is made without it (``without_database``) and nothing is stored for the event,
        so a redelivery of it later is answered normally.
        """
        try:
            return await self.handle(inbound, gate=gate)
        except Exception as exc:
            unavailable = database_unavailable(exc)
            # Only the exception's type: its message or traceback could name a value.
            log.error(
                "could not answer an update from %s: %s%s",
                inbound.channel,
                type(exc).__name__,
                " (database unavailable)" if unavailable else "",
            )
            metrics.UPDATES.labels(metrics.channel_label(inbound.channel), "error").inc()
            metrics.ERRORS.labels("database" if unavailable else "runtime").inc()
            if unavailable:
                return self.without_database(inbound)
            return self.apology(inbound.locale_hint, unavailable=unavailable)

    def without_database(self, inbound: Inbound) -> list[RenderedReply]:
        """The answer when the person's state cannot be read: the engine's own for a safety
        message or quick exit, else the short apology with the hotlines."""
        try:
            outcome = respond(None, inbound, self.services.context)
            if outcome.urgent or outcome.intent in ANSWERED_WITHOUT_DATABASE:
                return self.services.renderer.render(outcome)
        except Exception as exc:  # never let the fallback fail: the apology below needs nothing
            log.error("could not answer without the database: %s", type(exc).__name__)
        return self.apology(inbound.locale_hint, unavailable=True)

    def apology(self, locale_hint: str | None = None, *, unavailable: bool = False) -> list[RenderedReply]:
        """The reply sent when something failed: a short apology, then the hotlines.

        The hotlines come from the content pack in memory, so they reach the person even when
        the database is down.
        """
        hint = (locale_hint or "").split("-")[0].lower()
        locale = hint if hint in LOCALES else DEFAULT_LOCALE
        key = "error.unavailable" if unavailable else "error.internal"
        outcome = Outcome(None, (Reply((Msg(key), HotlineList())),), locale=locale)
        return self.services.renderer.render(outcome)

    def update_key(self, inbound: Inbound) -> bytes | None:
        """A keyed hash of channel and update id: enough to spot a redelivery, nothing more."""
        if inbound.update_id is None:
            return None
        message = f"update:{inbound.channel}:{inbound.update_id}".encode()
        return hmac.new(self.services.secrets.pepper, message, hashlib.sha256).digest()[:16]

    async def handle(self, inbound: Inbound, *, gate: Gate | None = None) -> list[RenderedReply]:
        """Answer one inbound event; return the rendered replies (none for a redelivery)."""
        services = self.services
        started = time.perf_counter()
        channel = metrics.channel_label(inbound.channel)
        if not inbound.private:
            # Groups: one fixed answer, and nothing about anyone is read or written.
            metrics.UPDATES.labels(channel, "group").inc()
            return services.renderer.render(respond(None, inbound, services.context))
        pseudonym = services.secrets.pseudonym(inbound.channel, inbound.user_id)
        key = self.update_key(inbound)

        async def work(session: AsyncSession, ring: KeyRing) -> Outcome | None:
            now = services.clock.now()
            day = today(services.clock)
            if key is not None and not await mark_processed(session, key, now=now):
                return None
            raw = await load_record(session, ring, pseudonym)
            record = PersonRecord.from_bytes(raw) if raw is not None else None
            state = await self._current_codes(session, record.state, day) if record else None
            # Drawn afresh on every attempt: a collision with a stored code retries the transaction.
            facts: TurnFacts | None = TurnFacts(today=day, new_code=codes.new_code())
            if gate is not None and not gate.may_issue_code():
                facts = None  # the engine then answers "no code can be issued right now"
            outcome = respond(state, inbound, services.context, facts)
            open_case = state.case if state is not None else None
            if any(isinstance(effect, EraseRecord) for effect in outcome.effects):
                if record is not None and state is not None:
                    await self._orphan(session, ring, state, record.marks.current(day))
                if open_case is not None:  # erasure ends the chat and erases its messages
                    await cases.end_by_person(session, ring, open_case[0], now=now)
                    touched.append(None)
                await erase_person(session, pseudonym)
            elif outcome.state is not None:
                marks = record.marks.current(day) if record else Marks()
                marks = await self.carry_out(
                    session, ring, pseudonym, inbound, outcome, marks, new=record is None, gate=gate
                )
                # replace(): what else the record holds (a kept reply address) stays as it was.
                updated = replace(record, state=outcome.state, marks=marks) if record else PersonRecord(outcome.state, (), marks)
                if any(isinstance(effect, COUNSELLING_EFFECTS) for effect in outcome.effects):
                    only_lines = open_case is not None and all(
                        isinstance(effect, RelayText) for effect in outcome.effects if isinstance(effect, COUNSELLING_EFFECTS)
                    )
                    outcome, updated = await self._counselling(session, ring, pseudonym, inbound, outcome, updated, open_case)
                    still_open = outcome.state is not None and outcome.state.case == open_case
                    touched.append(line_note(open_case[0]) if only_lines and still_open and open_case else None)
                if inbound.message_id is not None:
                    # The chat's ids are noted here, in the one transaction of the update: quick
                    # exit deletes from the oldest noted id up to its own reply.
                    updated = updated.with_messages([inbound.message_id], now)
                else:
                    updated = updated.fresh(now)
                can = capabilities(inbound.channel)
                if can.reply_window is not None:
                    # The channel's reply window and quota start again, less the answers this
                    # message gets (counted as the adapter will send them: fitted to the channel).
                    answered = len(services.renderer.fit(services.renderer.render(outcome), can))
                    updated = updated.heard_now(now, answered)
                await save_record(session, ring, pseudonym, updated.to_bytes(), today=day, new=record is None)
            return outcome

        # A counselling case changed: wake the counsellors' pages here (a note each: "line:12"
        # when only case 12's transcript grew, so the pages that do not hold it read nothing).
        touched: list[str | None] = []
        outcome = await self._transaction(work)
        for note in set(touched):
            CHANGES.wake(note)
        if outcome is None:
            log.info("ignored a redelivered update from %s", inbound.channel)
            metrics.UPDATES.labels(channel, "duplicate").inc()
            return []
        log.debug("answered", extra={"channel": inbound.channel, "intent": outcome.intent})
        rendered = services.renderer.render(outcome)
        metrics.UPDATES.labels(channel, "answered").inc()
        metrics.REPLY_SECONDS.labels(channel).observe(time.perf_counter() - started)
        if outcome.state is not None:
            for effect in outcome.effects:
                if isinstance(effect, IssueReferral):
                    metrics.REFERRALS_ISSUED.inc()
                    if gate is not None:
                        gate.issued_codes(1)
        return rendered

    async def _counselling(
        self,
        session: AsyncSession,
        ring: KeyRing,
        pseudonym: bytes,
        inbound: Inbound,
        outcome: Outcome,
        record: PersonRecord,
        open_case: tuple[int, str] | None,
    ) -> tuple[Outcome, PersonRecord]:
        """Carry out the counsellor chat's effects: open a case (keeping the reply address for
        it), copy a message to it, or end it; say how long the wait may be."""
        assert outcome.state is not None
        state, now, extra = outcome.state, self.services.clock.now(), []
        for effect in outcome.effects:
            if isinstance(effect, EndCase) and open_case is not None:
                await cases.end_by_person(session, ring, open_case[0], now=now)
                record = record.release(COUNSELLING)
            elif isinstance(effect, OpenCase):
                where = await self._where(session, state, inbound.channel)
                opened = await cases.open_for_person(
                    session, ring, person=CasePerson(pseudonym, outcome.locale), commune=where.commune,
                    province=where.province, channel=inbound.channel, urgent=False, now=now,
                )
                state = replace(state, case=(opened.case_id, opened.handle))
                record = record.keep_address(inbound.user_id, COUNSELLING)
                extra.append(self._waiting_reply(await cases.availability(session, opened.case_id, now=now), outcome.locale))
            elif isinstance(effect, RelayText) and state.case is not None:
                case_id = state.case[0]
                try:
                    await cases.person_says(session, ring, case_id, effect.text, urgent=effect.urgent, now=now)
                except cases.Refused:  # closed meanwhile (by the counsellor, or its age limit)
                    state, record = replace(state, case=None), record.release(COUNSELLING)
                    extra.append(Reply((Msg("counselling.ended"),), (MENU, QUICK_EXIT)))
                    continue
                if effect.answered is not None:
                    await cases.bot_says(session, ring, case_id, BOT_NOTE.format(intent=effect.answered), now=now)
        outcome = replace(outcome, state=state, replies=(*outcome.replies, *extra))
        return outcome, replace(record, state=state)

    def _waiting_reply(self, found: cases.Availability, locale: str) -> Reply:
        if found.on_duty:
            key = "counselling.waiting" if found.ahead else "counselling.waiting_first"
            return Reply((Msg(key, {"ahead": found.ahead}),), IN_CHAT)
        if found.next_start is not None:
            when = format_datetime(found.next_start, "EEEE HH:mm", locale=BABEL_LOCALES.get(locale, "vi_VN"))
            return Reply((Msg("counselling.nobody_on_duty", {"when": when}), HotlineList()), IN_CHAT)
        return Reply((Msg("counselling.nobody_on_duty_no_hours"), HotlineList()), IN_CHAT)

    async def policy(self, session: AsyncSession) -> Policy:
        """The minimum package and threshold, re-read now and then so every worker sees a change."""
        now = self.services.clock.now()
        if self._policy is None or now - self._policy_at > POLICY_REFRESH:
            self._policy = await load_policy(session)
            self._policy_at = now
        return self._policy

    async def _current_codes(self, session: AsyncSession, state: State, day: dt.date) -> State:
        """Drop the codes that were used, cancelled or expired since the person last wrote."""
        if not state.codes:
            return state
        pepper = self.services.secrets.pepper
        hashed = [(codes.code_hash(pepper, h.code), h) for h in still_held(state.codes, day)]
        open_hashes = await usable(session, [code_hash for code_hash, _ in hashed], today=day)
        kept = tuple(h for code_hash, h in hashed if code_hash in open_hashes)
        return state if kept == state.codes else replace(state, codes=kept)

    async def _where(self, session: AsyncSession, state: State, channel: str, commune: int | None = None) -> Where:
        """Where a count belongs: the commune chosen (or the peer link's), its province, the link."""
        peer = await active_peer(session, state.peer)
        code = commune if commune is not None else state.commune
        found = self.services.context.communes.get(code) if code is not None else None
        if found is not None:
            return Where(found.code, found.province_code, channel, peer.code if peer else "")
        if peer is not None:
            return Where(peer.commune, peer.province, channel, peer.code)
        return Where(0, 0, channel, "")

    async def carry_out(
        self,
        session: AsyncSession,
        ring: KeyRing,
        pseudonym: bytes,
        inbound: Inbound,
        outcome: Outcome,
        marks: Marks,
        *,
        new: bool,
        gate: Gate | None = None,
    ) -> Marks:
        """Issue and cancel referrals and count, for a person who accepted the notice.

        Counts made under "Chưa rõ xã" (noted in ``marks``) move to the commune the person has
        chosen, in this transaction, the first time a turn ends with a known commune chosen.
        """
        assert outcome.state is not None
        state, day = outcome.state, today(self.services.clock)
        pepper = self.services.secrets.pepper
        increments: list[Increment] = []
        where: Where | None = None
        if new:
            where = await self._where(session, state, inbound.channel)
            increments.append(Increment(day, where, counting.CONSENTED))
        for effect in outcome.effects:
            if isinstance(effect, Engaged):
                policy = await self.policy(session)
                where = where or await self._where(session, state, inbound.channel)
                admit = gate.count_new_person if gate is not None else None
                marks, found = counting.count_engagement(marks, effect.kind, policy.package, day, where, admit=admit)
                increments.extend(found)
            elif isinstance(effect, IssueReferral):
                place = await self._where(session, state, inbound.channel, commune=effect.commune)
                await insert_referral(
                    session,
                    ring,
                    code_hash=codes.code_hash(pepper, effect.code),
                    service=effect.service,
                    service_type=effect.service_type,
                    commune=place.commune,
                    province=place.province,
                    channel=place.channel,
                    peer=place.peer,
                    issued_on=day,
                    expires_on=effect.expires,
                    holder=pseudonym,
                )
                increments.append(Increment(day, place, counting.REFERRAL_ISSUED, effect.service_type))
            elif isinstance(effect, CancelReferral):
                row = await cancel_referral(session, ring, codes.code_hash(pepper, effect.code), pseudonym)
                if row is not None:
                    place = Where(row.commune, row.province, row.channel, row.peer)
                    increments.append(Increment(day, place, counting.REFERRAL_CANCELLED, row.service_type))
        named = self.services.context.communes.get(state.commune) if state.commune is not None else None
        if named is not None and marks.unknown:
            # The person named a commune after being counted under "Chưa rõ xã" in periods still
            # open: those counts move to it now, with the record that says so (counting.attribute).
            marks, moved = counting.attribute(marks, named.code, named.province_code, inbound.channel)
            increments.extend(moved)
        await apply_increments(session, increments, today=day)
        return marks

    async def _orphan(self, session: AsyncSession, ring: KeyRing, state: State, marks: Marks) -> None:
        """Before erasure: the person's open codes stay usable but lose their link to them."""
        if not state.codes:
            return
        pepper = self.services.secrets.pepper
        await orphan_referrals(
            session,
            ring,
            [codes.code_hash(pepper, held.code) for held in state.codes],
            connected_periods=marks.counted.get("connected", frozenset()),
        )

    async def take_messages(self, inbound: Inbound) -> list[int] | None:
        """Return and forget the tracked message ids; None when nothing is stored for the person."""
        taken: list[int] | None = None

        def take(record: PersonRecord) -> PersonRecord:
            nonlocal taken
            taken = [pair[0] for pair in record.fresh(self.services.clock.now()).messages]
            return replace(record, messages=())

        try:
            await self._update_record(inbound, take)
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            # Quick exit goes on without the noted ids: the channel deletes the recent ones.
            log.error("could not read the noted message ids: %s (database unavailable)", type(exc).__name__)
            return None
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
        """Run ``work`` in one transaction (storage/transactions.py retries a key rotation, a
        racing insert, a deadlock or a connection lost while pooled), all attempts together
        within the database timeout."""

        async def attempt(run: Attempt) -> T:
            return await work(run.session, run.ring)

        db = self.services.db
        return await run_in_transaction(db, self.services.keys, attempt, timeout=db.timeout)


def capabilities(channel: str) -> Capabilities:
    """The registry's capabilities of ``channel``; none that matter for a name it does not know."""
    spec = BY_NAME.get(channel)
    return spec.capabilities if spec is not None else Capabilities(max_text=4096)
