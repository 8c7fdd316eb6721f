"""The counsellor chat's desk: runs the use cases of counselling/ in one transaction each, tells
the person through the outbox, and wakes the counsellors' pages of this worker (issue #18).

A counsellor's page (bot/staff/views/counselling.py) holds a WebSocket or polls; either way it
re-reads the database when ``Changes`` wakes it, and at the latest every few seconds. Changes
made on this worker wake it at once; changes made on another (PostgreSQL) arrive through
``storage.counselling.ChangeListener`` (NOTIFY, delivered at commit). Messages to the person go
into the outbox in the same transaction as the change that causes them, addressed with the reply
address kept in the person's sealed record while the case is open (bot/record.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from bot import outbox
from bot.bootstrap import Services
from bot.changes import CHANGES, COUNSELLING, Changes, line_note
from bot.clock import today
from bot.record import PersonRecord
from bot.runtime import Runtime
from counselling import cases
from counselling.cases import Counsellor, ForPerson, Reason, Refused
from handlers import referral
from handlers.common import MENU, QUICK_EXIT, Outcome, Turn
from handlers.counselling import END
from handlers.types import HotlineList, Inbound, IssueReferral, Msg, Reply, ServiceName, Text, TopicPart, TopicText, TurnFacts
from referrals import codes, counting
from referrals.counters import apply_increments
from referrals.counting import Where
from referrals.indicators import load_policy
from storage import counselling as store
from storage.counselling import Line
from storage.crypto import KeyRing
from storage.outbox import Session
from storage.persons import load_record, save_record
from storage.transactions import Attempt

T = TypeVar("T")
EXPIRY_SECONDS = 60.0
log = logging.getLogger("antam.counselling")


async def release_person(
    session: Session, ring: KeyRing, closed: cases.Closed, day: dt.date, *, counted: bool = False
) -> None:
    """The case is over: the person's record forgets it and no longer keeps the address for it.

    ``counted``: a counsellor closed it with an outcome, so the person counts once per period as
    "counselled" and "reached" (referrals/counting.py), where the case belonged (its commune).
    """
    raw = await load_record(session, ring, closed.person.pseudonym)
    if raw is None:
        return
    record = PersonRecord.from_bytes(raw)
    if record.state.case is not None and record.state.case[0] == closed.case_id:
        record = replace(record, state=replace(record.state, case=None))
    if counted:
        where = Where(closed.commune, closed.province, closed.channel, "")
        policy = await load_policy(session)
        marks, increments = counting.count_engagement(
            record.marks.current(day), counting.COUNSELLING, policy.package, day, where
        )
        await apply_increments(session, increments, today=day)
        record = replace(record, marks=marks)
    await save_record(session, ring, closed.person.pseudonym, record.release(COUNSELLING).to_bytes(), today=day)


@dataclass(frozen=True)
class Snapshot:
    """What one counsellor's page shows: the cases they see, and new lines of the ones they hold."""

    cases: list[cases.CaseView]
    lines: dict[str, list[Line]]  # by handle
    on_duty: bool


class Desk:
    def __init__(self, services: Services, changes: Changes | None = None) -> None:
        self.services = services
        self.changes = changes or CHANGES
        self._listener = store.ChangeListener(services.db, self.changes.wake)
        # Carries out the effects of the person's own code flow (issue_code), as for the person.
        self._runtime = Runtime(services)

    async def start(self) -> None:
        await self._listener.start()

    async def stop(self) -> None:
        await self._listener.stop()

    async def _run(
        self, work: Callable[[Attempt], Awaitable[T]], *, note: Callable[[], str | None] = lambda: None
    ) -> T:
        """Run ``work`` in one transaction, then wake this worker's pages (``note``: what changed)."""
        result = await self.services.run(work, timeout=self.services.db.timeout)
        self.changes.wake(note())
        return result

    async def _tell(self, attempt: Attempt, told: ForPerson, key: str, **params: str | int) -> bool:
        """Queue a message to the person of a case; False when they cannot be reached now."""
        return await self._tell_parts(attempt, told, (Msg(key, params),))

    async def _tell_parts(self, attempt: Attempt, told: ForPerson, parts: tuple[Text, ...]) -> bool:
        session, ring = attempt.session, attempt.ring
        raw = await load_record(session, ring, told.person.pseudonym)
        if raw is None:
            return False
        record = PersonRecord.from_bytes(raw)
        buttons = (END, QUICK_EXIT) if record.state.case is not None else (MENU, QUICK_EXIT)
        reply = Reply(parts, buttons, protect=True)
        rendered = self.services.renderer.render(Outcome(None, (reply,), locale=told.person.locale))
        now = self.services.clock.now()
        queued = await outbox.write(session, ring, record, told.channel, rendered, now=now)
        if queued is None:
            return False
        await save_record(session, ring, told.person.pseudonym, queued.record.to_bytes(), today=today(self.services.clock))
        return True

    async def _case_id(self, attempt: Attempt, handle: str) -> int:
        case = await store.open_case_by_handle(attempt.session, handle)
        if case is None:
            raise Refused(Reason.NOT_FOUND)
        return case.id

    # --- the counsellor's actions -------------------------------------------------------------

    async def on_duty(self, who: Counsellor) -> None:
        async def work(attempt: Attempt) -> None:
            await cases.go_on_duty(attempt.session, who, now=self.services.clock.now())

        await self._run(work)

    async def off_duty(self, who: Counsellor) -> int:
        """Off duty; the counsellor's open cases go back to the queue and their people are told."""

        async def work(attempt: Attempt) -> int:
            returned = await cases.go_off_duty(attempt.session, attempt.ring, who, now=self.services.clock.now())
            for told in returned:
                await self._tell(attempt, told, "counselling.returned")
            return len(returned)

        return await self._run(work)

    async def claim(self, who: Counsellor, handle: str) -> None:
        async def work(attempt: Attempt) -> None:
            case_id = await self._case_id(attempt, handle)
            told = await cases.claim(attempt.session, attempt.ring, who, case_id, now=self.services.clock.now())
            await self._tell(attempt, told, "counselling.joined")

        await self._run(work)

    async def send(self, who: Counsellor, handle: str, text: str) -> bool:
        """The counsellor's message, to the transcript and to the person; False when the person
        cannot be reached now (the channel's reply window is over): the page says so."""

        written: list[int] = []

        async def work(attempt: Attempt) -> bool:
            case_id = await self._case_id(attempt, handle)
            told = await cases.counsellor_says(attempt.session, attempt.ring, who, case_id, text, now=self.services.clock.now())
            written.append(case_id)
            return await self._tell(attempt, told, "counselling.from_counsellor", text=cases.clean_message(text))

        # Only this case's transcript grew: the pages that do not hold it need not read again.
        return await self._run(work, note=lambda: line_note(written[-1]) if written else None)

    async def send_content(self, who: Counsellor, handle: str, *, topic: str | None = None) -> bool:
        """Send the person a topic of the content pack (its title, summary and source), or the
        hotlines (no topic), in the person's language; the transcript keeps the same text."""
        if topic is not None and topic not in self.services.context.pack.topics:
            raise Refused(Reason.NOT_FOUND)

        async def work(attempt: Attempt) -> bool:
            session, ring = attempt.session, attempt.ring
            case_id = await self._case_id(attempt, handle)
            told = await cases.holding(session, ring, who, case_id)
            parts: tuple[Text, ...] = (
                (TopicText(topic, TopicPart.TITLE), TopicText(topic, TopicPart.SUMMARY), TopicText(topic, TopicPart.SOURCE))
                if topic is not None else (Msg("counselling.hotlines_from_counsellor"), HotlineList())
            )
            renderer, locale = self.services.renderer, told.person.locale
            text = "\n".join(renderer.text(part, locale) for part in parts)
            await cases.counsellor_says(session, ring, who, case_id, text[: cases.MAX_COUNSELLOR_CHARS], now=self.services.clock.now())
            return await self._tell_parts(attempt, told, parts)

        return await self._run(work)

    async def issue_code(self, who: Counsellor, handle: str, service_id: str, kind: str) -> str | None:
        """Give the person a referral code for ``kind`` at ``service_id`` through the same flow
        as when they ask for one (its limits, counting and single use), and send it to them.

        None when done; else the catalog key of why not (no commune chosen, limits, no such
        place), in the person's reply, which the counsellor is shown instead. The counsellor
        never sees the code; the transcript notes only that one was sent, and for what.
        """
        async def work(attempt: Attempt) -> str | None:
            session, ring, now = attempt.session, attempt.ring, self.services.clock.now()
            case_id = await self._case_id(attempt, handle)
            told = await cases.holding(session, ring, who, case_id)
            raw = await load_record(session, ring, told.person.pseudonym)
            if raw is None:
                raise Refused(Reason.CLOSED)
            record = PersonRecord.from_bytes(raw)
            day = today(self.services.clock)
            facts = TurnFacts(today=day, new_code=codes.new_code())
            turn = Turn(record.state, told.person.locale, self.services.context, "counsellor_code", facts)
            outcome = referral.issue(turn, service_id, kind)
            if not any(isinstance(effect, IssueReferral) for effect in outcome.effects):
                first = outcome.replies[0].parts[0] if outcome.replies and outcome.replies[0].parts else None
                return first.key if isinstance(first, Msg) else "input.stale_button"
            assert outcome.state is not None
            inbound = Inbound(told.channel, record.address or "")
            marks = await self._runtime.carry_out(session, ring, told.person.pseudonym, inbound, outcome, record.marks.current(day), new=False)
            record = replace(record, state=outcome.state, marks=marks)
            await save_record(session, ring, told.person.pseudonym, record.to_bytes(), today=day)
            await self._tell_parts(attempt, told, outcome.replies[0].parts)
            name = self.services.renderer.text(ServiceName(service_id), "vi")
            await cases.bot_says(session, ring, case_id, f"An Tâm đã gửi mã giới thiệu ({kind}): {name}.", now=now)
            return None

        return await self._run(work)

    async def colleagues(self, who: Counsellor, handle: str) -> list[tuple[int, str]]:
        async def work(attempt: Attempt) -> list[tuple[int, str]]:
            return await cases.colleagues(attempt.session, who, await self._case_id(attempt, handle))

        return await self.services.run(work, timeout=self.services.db.timeout)

    async def hand_over(self, who: Counsellor, handle: str, to_account: int) -> None:
        async def work(attempt: Attempt) -> None:
            case_id = await self._case_id(attempt, handle)
            await cases.hand_over(attempt.session, who, case_id, to_account, now=self.services.clock.now())

        await self._run(work)

    async def close(self, who: Counsellor, handle: str, outcome: str) -> None:
        async def work(attempt: Attempt) -> None:
            case_id = await self._case_id(attempt, handle)
            closed = await cases.close(attempt.session, attempt.ring, who, case_id, outcome, now=self.services.clock.now())
            await self._tell(attempt, closed, "counselling.closed")
            await self._release(attempt.session, attempt.ring, closed, counted=True)

        await self._run(work)

    async def _release(self, session: Session, ring: KeyRing, closed: cases.Closed, *, counted: bool = False) -> None:
        await release_person(session, ring, closed, today(self.services.clock), counted=counted)

    async def expire(self) -> int:
        """Close the cases whose last message is older than the setting: their messages go, the
        person is told (where the channel still allows) and their record forgets the case."""
        hours = self.services.settings.counselling_transcript_hours

        async def work(attempt: Attempt) -> int:
            closed = await cases.expire(attempt.session, attempt.ring, now=self.services.clock.now(), hours=hours)
            for case in closed:
                await self._tell(attempt, case, "counselling.expired")
                await self._release(attempt.session, attempt.ring, case)
            return len(closed)

        return await self._run(work)

    async def keep_expiring(self, every: float = EXPIRY_SECONDS) -> None:
        """Until cancelled: expire old cases every ``every`` seconds (the staff app runs it)."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.expire()
            except Exception as exc:  # the database is away: try again next time
                log.error("counselling: could not expire old cases: %s", type(exc).__name__)

    async def snapshot(self, who: Counsellor, seen: dict[str, int]) -> Snapshot:
        """The cases ``who`` sees now, and the lines after ``seen[handle]`` of the ones they hold."""

        async def work(attempt: Attempt) -> Snapshot:
            session, ring, now = attempt.session, attempt.ring, self.services.clock.now()
            views = await cases.visible_cases(session, who, now=now)
            lines, shown = {}, []
            for view in views:
                if view.mine:
                    try:
                        lines[view.handle] = await cases.read(session, ring, who, view.case_id, after=seen.get(view.handle, 0))
                    except Refused:  # closed or handed over since the list was read (PostgreSQL reads committed)
                        continue
                shown.append(view)
            duty = who.account_id in await store.on_duty(session)
            return Snapshot(shown, lines, duty)

        return await self.services.run(work, timeout=self.services.db.timeout)
