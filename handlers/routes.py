"""The route table of button payloads: each kind (handlers/payloads.py) and the flow it opens.

The first kind that accepts a payload wins; one that none accepts is an old or forged button and
gets the menu with "no longer available". The intent a button counts as (``button:<route>``,
used by the runtime's list of answers that need no database, and by the metrics) is the first
part of the kind's prefix, as it was before payloads were typed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from handlers import counselling, info, menu, onboarding, privacy, referral, safety, services
from handlers import payloads as p
from handlers.common import Outcome, Turn
from handlers.state import PEER_CODE
from handlers.types import Msg

P = TypeVar("P", bound=p.Payload)


@dataclass(frozen=True)
class Route(Generic[P]):
    kind: type[P]
    flow: Callable[[Turn, P], Outcome]

    @property
    def intent(self) -> str:
        return "button:" + self.kind.PREFIX.split(":")[0]

    def answer(self, turn: Turn, payload: str) -> Outcome | None:
        found = self.kind.unpack(payload)
        if found is None:
            return None
        return self.flow(Turn(turn.state, turn.locale, turn.ctx, self.intent, turn.facts), found)


def _accept_via(turn: Turn, payload: p.AcceptVia) -> Outcome:
    # A peer code that is not one (an edited button) accepts the notice without a link.
    return onboarding.accept(turn, peer=payload.peer if PEER_CODE.match(payload.peer) else None)


class Answers(Protocol):
    def answer(self, turn: Turn, payload: str) -> Outcome | None: ...


ROUTES: tuple[Answers, ...] = (
    Route(p.Accept, lambda t, _: onboarding.accept(t)),
    Route(p.AcceptVia, _accept_via),
    Route(p.Decline, lambda t, _: onboarding.decline(t)),
    Route(p.NoticeDetails, lambda t, _: onboarding.read_more(t)),
    Route(p.Menu, lambda t, _: menu.show_menu(t)),
    Route(p.Counsel, lambda t, _: counselling.offer(t)),
    Route(p.CounselStart, lambda t, _: counselling.start(t)),
    Route(p.CounselEnd, lambda t, _: counselling.end(t)),
    Route(p.Groups, lambda t, _: info.groups(t)),
    Route(p.Group, lambda t, b: info.group(t, b.group)),
    Route(p.Topic, lambda t, b: info.topic(t, b.topic)),
    Route(p.TopicMore, lambda t, b: info.topic_more(t, b.topic)),
    Route(p.Services, lambda t, _: services.services_menu(t)),
    Route(p.ChangeCommune, lambda t, _: services.ask_commune(t)),
    Route(p.ServiceKinds, lambda t, _: services.service_kinds(t)),
    Route(p.CommuneServices, lambda t, b: services.commune_services(t, b.commune)),
    Route(p.ChooseKind, lambda t, _: referral.choose_kind(t)),
    Route(p.ChoosePlace, lambda t, b: referral.choose_place(t, b.kind)),
    Route(p.Issue, lambda t, b: referral.issue_by_index(t, b.choice)),
    Route(p.MyCodes, lambda t, _: referral.my_codes(t)),
    Route(p.AskCancel, lambda t, b: referral.ask_cancel(t, b.code)),
    Route(p.ConfirmCancel, lambda t, b: referral.cancel(t, b.code)),
    Route(p.Emergency, lambda t, _: safety.emergency_menu(t)),
    Route(p.Privacy, lambda t, _: privacy.privacy_menu(t)),
    Route(p.AskErase, lambda t, _: privacy.ask_erase(t)),
    Route(p.ConfirmErase, lambda t, _: privacy.confirm_erase(t)),
    Route(p.KeepRecord, lambda t, _: privacy.cancel_erase(t)),
    Route(p.QuickExit, lambda t, _: privacy.quick_exit(t)),
    Route(p.Language, lambda t, b: menu.switch_language(t, b.locale)),
)


def route_payload(turn: Turn, payload: str) -> Outcome:
    """Answer a pressed button; an unknown or outdated one gets the menu and an explanation."""
    for route in ROUTES:
        answered = route.answer(turn, payload)
        if answered is not None:
            return answered
    stale = Turn(turn.state, turn.locale, turn.ctx, "stale_button", turn.facts)
    return menu.show_menu(stale, Msg("input.stale_button"))


__all__ = ["ROUTES", "Route", "route_payload"]
