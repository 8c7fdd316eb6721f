"""Greeting and consent: the privacy notice comes first, and declining loses nothing.

A person who has not accepted has no stored state. Accepting stores a minimal encrypted
record; declining after having accepted is a withdrawal, which goes through erasure.
"""

from __future__ import annotations

from dataclasses import replace

from handlers import payloads as p
from handlers.common import QUICK_EXIT, Outcome, Turn
from handlers.menu import menu_reply, show_menu
from handlers.privacy import ask_erase
from handlers.state import State, Step
from handlers.types import Button, Msg, Reply

CONSENT_BUTTONS = (
    Button(Msg("consent.accept"), p.Accept().pack()),
    Button(Msg("consent.decline"), p.Decline().pack()),
    Button(Msg("consent.read_more"), p.NoticeDetails().pack()),
)


def consent_buttons(peer: str | None) -> tuple[Button, ...]:
    """Accept / decline / read more; a peer link's code travels in the accept button, since
    nothing may be stored before the person accepts."""
    if peer is None:
        return CONSENT_BUTTONS
    return (Button(Msg("consent.accept"), p.AcceptVia(peer).pack()), *CONSENT_BUTTONS[1:])


def welcome(turn: Turn, *, peer: str | None = None) -> Outcome:
    """Greet a person who has not accepted the notice, and show the notice in short: who An Tâm
    is and the choice, in about 40 words; the full notice is one tap away ("Đọc thêm")."""
    notice = Msg("consent.notice", {"days": turn.ctx.retention_days})
    return turn.answer(Reply((Msg("welcome.greeting"), notice), consent_buttons(peer) + (QUICK_EXIT,)))


def greet(turn: Turn, *, peer: str | None = None) -> Outcome:
    if turn.state is None:
        return welcome(turn, peer=peer)
    if peer is not None and turn.state.peer is None:
        # Arrived through a peer link after having consented before: attribute it once.
        return show_menu(replace(turn, state=replace(turn.state, peer=peer)), Msg("welcome.back"))
    return show_menu(turn, Msg("welcome.back"))


def accept(turn: Turn, *, peer: str | None = None) -> Outcome:
    if turn.state is not None:
        return show_menu(turn, Msg("consent.already"))
    state = State(step=Step.MENU, locale=turn.locale, peer=peer)
    accepted = Turn(state=state, locale=turn.locale, ctx=turn.ctx, intent=turn.intent, facts=turn.facts)
    return accepted.answer(menu_reply(accepted, Msg("consent.accepted")), state=state)


def decline(turn: Turn) -> Outcome:
    if turn.state is not None:
        return ask_erase(turn, lead=Msg("consent.withdraw"))
    return turn.answer(menu_reply(turn, Msg("consent.declined")), state=None)


def read_more(turn: Turn) -> Outcome:
    """The full privacy notice: what is kept, for how long, and what is never kept."""
    buttons = CONSENT_BUTTONS[:2] if turn.state is None else ()
    parts = (Msg("consent.notice_full", {"days": turn.ctx.retention_days}), Msg("consent.details"))
    return turn.answer(Reply(parts, (*buttons, Button(Msg("nav.menu"), p.Menu().pack()), QUICK_EXIT)))
