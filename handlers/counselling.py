"""Talking to a person: the counsellor chat from the person's side (issue #18).

First a short notice of what the counsellor sees and how long messages are kept, with the
hotlines; accepting opens a case (and, for someone new, gives the general consent the notice
names). While the chat is open, what the person types is copied to the counsellor — except
commands and buttons — and a safety message still gets the bot's own answer at once (the case
is then marked urgent). The person can end the chat at any time; quick exit and erasure end it
too. Only text is relayed.
"""

from __future__ import annotations

from dataclasses import replace

from content.masking import mask
from content.understand import Understanding
from handlers import payloads as p
from handlers.common import MENU, QUICK_EXIT, Outcome, Turn
from handlers.menu import menu_reply
from handlers.state import State, Step
from handlers.types import Button, EndCase, HotlineList, Msg, OpenCase, RelayText, Reply

END = Button(Msg("counselling.end_button"), p.CounselEnd().pack())
IN_CHAT = (END, QUICK_EXIT)


def offer(turn: Turn) -> Outcome:
    """The notice before a first chat, with the hotlines for emergencies."""
    if turn.state is not None and turn.state.case is not None:
        return turn.answer(Reply((Msg("counselling.already", {"handle": turn.state.case[1]}),), IN_CHAT))
    parts: list[Msg | HotlineList] = [Msg("counselling.notice", {"hours": turn.ctx.transcript_hours})]
    if turn.state is None:
        parts.append(Msg("counselling.consent_too", {"days": turn.ctx.retention_days}))
    parts.append(HotlineList())
    start = Button(Msg("counselling.start_button"), p.CounselStart().pack())
    buttons = (start, Button(Msg("consent.read_more"), p.NoticeDetails().pack()), MENU, QUICK_EXIT)
    return turn.answer(Reply(tuple(parts), buttons if turn.state is None else (start, MENU, QUICK_EXIT)))


def start(turn: Turn) -> Outcome:
    """Open the chat; the runtime adds how long the wait may be (who is on duty, the queue)."""
    if turn.state is not None and turn.state.case is not None:
        return offer(turn)
    state = turn.state.moved(Step.MENU) if turn.state is not None else State(locale=turn.locale)
    return turn.answer(Reply((Msg("counselling.opened"),), IN_CHAT), state=state, effects=(OpenCase(),))


def end(turn: Turn) -> Outcome:
    if turn.state is None or turn.state.case is None:
        return turn.answer(menu_reply(turn, Msg("counselling.not_open")))
    state = replace(turn.state, case=None)
    after = Turn(state, turn.locale, turn.ctx, turn.intent, turn.facts)
    return after.answer(menu_reply(after, Msg("counselling.ended_by_you")), state=state, effects=(EndCase(),))


def relay(turn: Turn, text: str, understood: Understanding, answer: Outcome | None) -> Outcome:
    """What the person typed during an open chat goes to the counsellor.

    ``answer`` is the bot's own answer to a safety message (numbers, the 72-hour message): it
    is given now, and the case is marked urgent. Otherwise the bot says nothing more — the
    counsellor answers — except, once, why numbers, accounts and links are hidden.
    """
    assert turn.state is not None
    state = turn.state
    if answer is not None:
        relayed = RelayText(text, urgent=True, answered=answer.intent)
        kept = replace(answer.state or state, case=state.case, masking_told=state.masking_told)
        replies = tuple(replace(reply, buttons=_in_chat(reply.buttons)) for reply in answer.replies)
        return replace(answer, state=kept, replies=replies, effects=(*answer.effects, relayed))
    if mask(text).masked and not state.masking_told:
        told = replace(state, masking_told=True)
        return turn.answer(Reply((Msg("counselling.masked"),), IN_CHAT), state=told, effects=(RelayText(text),))
    return turn.answer(state=state, effects=(RelayText(text),))


def _in_chat(buttons: tuple[Button, ...]) -> tuple[Button, ...]:
    """A safety answer's buttons during a chat: its own, with "end the chat" instead of the menu."""
    kept = tuple(button for button in buttons if button not in (MENU, QUICK_EXIT, END))
    return (*kept, END, QUICK_EXIT)


def text_only(turn: Turn) -> Outcome:
    return turn.answer(Reply((Msg("counselling.text_only"),), IN_CHAT))
