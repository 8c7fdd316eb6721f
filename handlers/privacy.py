"""Privacy: what is kept, erasure after confirmation, and quick exit."""

from __future__ import annotations

from dataclasses import replace

from handlers import payloads as p
from handlers.common import Outcome, Turn, nav
from handlers.menu import menu_reply
from handlers.state import Step
from handlers.types import Button, EndCase, EraseRecord, Msg, Reply, ReplyKind, TopicPart, TopicText

ERASE = Button(Msg("privacy.erase"), p.AskErase().pack())
YES_WORDS = frozenset({"co", "yes", "y", "dong y", "ok", "xoa", "xoa het", "xoa di", "chac chan", "dung"})
NO_WORDS = frozenset({"khong", "no", "n", "thoi", "huy", "dung xoa", "khong xoa"})


def privacy_menu(turn: Turn) -> Outcome:
    parts: list[Msg | TopicText] = []
    if "privacy" in turn.ctx.pack.topics:
        parts.append(TopicText("privacy", TopicPart.SUMMARY))
    parts.append(Msg("privacy.stored_yes" if turn.consented else "privacy.stored_no"))
    extra = [ERASE] if turn.consented else [Button(Msg("consent.accept"), p.Accept().pack())]
    if "privacy" in turn.ctx.pack.topics and turn.ctx.pack.topics["privacy"].vi.more:
        extra.append(Button(Msg("nav.read_more"), p.TopicMore("privacy").pack()))
    state = turn.state.moved(Step.MENU) if turn.state else None
    return turn.answer(Reply(tuple(parts), nav(*extra)), state=state)


def ask_erase(turn: Turn, *, lead: Msg | None = None) -> Outcome:
    if turn.state is None:
        return turn.answer(Reply((Msg("privacy.nothing_to_erase"),), nav()))
    parts = (lead, Msg("privacy.erase_confirm")) if lead else (Msg("privacy.erase_confirm"),)
    buttons = (Button(Msg("privacy.erase_yes"), p.ConfirmErase().pack()), Button(Msg("privacy.erase_no"), p.KeepRecord().pack()))
    return turn.answer(Reply(parts, buttons), state=turn.state.moved(Step.CONFIRM_ERASE))


def confirm_erase(turn: Turn) -> Outcome:
    if turn.state is None:
        return turn.answer(Reply((Msg("privacy.nothing_to_erase"),), nav()))
    if turn.state.step is not Step.CONFIRM_ERASE:
        # An old "yes" button must never erase without a fresh confirmation.
        return ask_erase(turn)
    return turn.answer(
        menu_reply(Turn(None, turn.locale, turn.ctx, turn.intent, turn.facts), Msg("privacy.erased")),
        state=None,
        effects=(EraseRecord(),),
    )


def cancel_erase(turn: Turn) -> Outcome:
    state = turn.state.moved(Step.MENU) if turn.state else None
    return turn.answer(menu_reply(turn, Msg("privacy.erase_cancelled")), state=state)


def quick_exit(turn: Turn) -> Outcome:
    """Hide the conversation; the channel removes what it can from the device. An open
    counsellor chat ends with it (its messages are erased)."""
    state = turn.state.moved(Step.MENU) if turn.state else None
    effects: tuple[EndCase, ...] = ()
    if state is not None and state.case is not None:
        state, effects = replace(state, case=None), (EndCase(),)
    return turn.answer(Reply((Msg("quickexit.neutral"),), kind=ReplyKind.QUICK_EXIT), state=state, effects=effects)
