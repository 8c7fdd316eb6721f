"""The main menu and the language switch."""

from __future__ import annotations

from dataclasses import replace

from handlers import payloads as p
from handlers.common import QUICK_EXIT, Outcome, Turn
from handlers.state import LOCALES, Step
from handlers.types import Button, Msg, Reply

_OTHER_LANGUAGE = {"vi": "en", "en": "vi"}


def menu_buttons(turn: Turn) -> tuple[Button, ...]:
    mine = (Button(Msg("referral.mine"), p.MyCodes().pack()),) if turn.state is not None and turn.state.codes else ()
    return (
        Button(Msg("menu.info"), p.Groups().pack()),
        Button(Msg("menu.services"), p.Services().pack()),
        *mine,
        Button(Msg("menu.livelihood"), p.Group("livelihood").pack()),
        Button(Msg("menu.emergency"), p.Emergency().pack()),
        Button(Msg("menu.counsellor"), p.Counsel().pack()),
        Button(Msg("menu.privacy"), p.Privacy().pack()),
        Button(Msg("menu.language"), p.Language(_OTHER_LANGUAGE[turn.locale]).pack()),
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
