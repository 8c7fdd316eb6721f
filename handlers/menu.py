"""The main menu and the language switch."""

from __future__ import annotations

from dataclasses import replace

from handlers.common import QUICK_EXIT, Outcome, Turn
from handlers.state import LOCALES, Step
from handlers.types import Button, Msg, Reply

_OTHER_LANGUAGE = {"vi": "en", "en": "vi"}


def menu_buttons(turn: Turn) -> tuple[Button, ...]:
    mine = (Button(Msg("referral.mine"), "rm"),) if turn.state is not None and turn.state.codes else ()
    return (
        Button(Msg("menu.info"), "i"),
        Button(Msg("menu.services"), "s"),
        *mine,
        Button(Msg("menu.livelihood"), "g:livelihood"),
        Button(Msg("menu.emergency"), "e"),
        Button(Msg("menu.privacy"), "p"),
        Button(Msg("menu.language"), f"l:{_OTHER_LANGUAGE[turn.locale]}"),
        QUICK_EXIT,
    )


def menu_reply(turn: Turn, *lead: Msg) -> Reply:
    parts = [*lead, Msg("menu.title")]
    if not turn.consented:
        parts.append(Msg("menu.nothing_stored"))
    return Reply(tuple(parts), menu_buttons(turn))


def show_menu(turn: Turn, *lead: Msg) -> Outcome:
    state = turn.state.moved(Step.MENU) if turn.state else None
    return turn.answer(menu_reply(turn, *lead), state=state)


def switch_language(turn: Turn, locale: str) -> Outcome:
    if locale not in LOCALES:
        return show_menu(turn, Msg("input.stale_button"))
    state = replace(turn.state, locale=locale) if turn.state else None
    return show_menu(replace(turn, state=state, locale=locale), Msg("language.switched"))
