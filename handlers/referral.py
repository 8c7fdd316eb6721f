"""Referral codes: ask for one for a service in the person's commune, see them, cancel one.

A code names a service and a commune, never a person. The person shows it at the service
("họ sẽ không hỏi tên bạn"); staff mark it used there, which is how "connected" is counted.
Codes are kept in the person's sealed state only while they can still be used. Asking for a
code needs the privacy notice accepted, since the code is remembered for the person.

Payloads: ``r`` choose a kind of help · ``rt:<type>`` choose the place · ``ri:<service>:<n>``
issue (n = index of the type in SERVICE_TYPES, to keep the payload short) · ``rm`` my codes ·
``rc:<code>`` confirm cancelling · ``rcy:<code>`` cancel.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from content.code_format import display
from content.pack import SERVICE_TYPES, Service
from handlers import payloads as p
from handlers.common import QUICK_EXIT, Outcome, Turn, nav
from handlers.menu import show_menu
from handlers.services import ask_commune, referral_types
from handlers.state import REFERRAL_CODE, HeldCode, Step
from handlers.types import (
    Button,
    CancelReferral,
    Dated,
    Emphasis,
    Engaged,
    IssueReferral,
    Msg,
    Reply,
    ServiceEntry,
    ServiceName,
    Text,
)

# At most this many usable codes at once, and this many new codes per calendar month: enough
# for anyone's real needs, and one person cannot inflate the counts.
MAX_OPEN_CODES = 3
MAX_CODES_PER_MONTH = 6
MAX_CHOICES = 16


def _services_here(turn: Turn) -> list[Service]:
    assert turn.state is not None and turn.state.commune is not None
    commune = turn.ctx.communes.get(turn.state.commune)
    if commune is None:
        return []
    return turn.ctx.pack.services_for(commune.code, commune.province_code)


def _needs(turn: Turn) -> Outcome | None:
    """Answer instead when a code cannot be asked for yet: no consent, or no commune chosen."""
    if turn.state is None:
        buttons = (Button(Msg("consent.accept"), p.Accept().pack()), Button(Msg("consent.read_more"), p.NoticeDetails().pack()))
        return turn.answer(Reply((Msg("referral.needs_consent"),), nav(*buttons)))
    if turn.state.commune is None or turn.ctx.communes.get(turn.state.commune) is None:
        return ask_commune(turn, lead=Msg("referral.needs_commune"))
    return None


def choose_kind(turn: Turn) -> Outcome:
    """The kinds of help the person's commune has a place for."""
    blocked = _needs(turn)
    if blocked is not None:
        return blocked
    kinds: list[str] = []
    for service in _services_here(turn):
        kinds.extend(kind for kind in referral_types(service) if kind not in kinds)
    if not kinds:
        return ask_commune(turn, lead=Msg("referral.none_here"))
    ordered = [kind for kind in SERVICE_TYPES if kind in kinds][:MAX_CHOICES]
    buttons = [Button(Msg(f"service_type.{kind}"), p.ChoosePlace(kind).pack()) for kind in ordered]
    mine = [Button(Msg("referral.mine"), p.MyCodes().pack())] if turn.state and turn.state.codes else []
    return turn.answer(Reply((Msg("referral.choose_kind"),), nav(*buttons, *mine, Button(Msg("nav.back"), p.Services().pack()))))


def choose_place(turn: Turn, kind: str) -> Outcome:
    blocked = _needs(turn)
    if blocked is not None:
        return blocked
    if kind not in SERVICE_TYPES:
        return show_menu(turn, Msg("input.stale_button"))
    places = [service for service in _services_here(turn) if kind in referral_types(service)]
    if not places:
        return choose_kind(turn)
    if len(places) == 1:
        return issue(turn, places[0].id, kind)
    index = SERVICE_TYPES.index(kind)
    buttons = [Button(ServiceName(service.id), p.Issue(f"{service.id}:{index}").pack()) for service in places[:MAX_CHOICES]]
    parts: tuple[Text, ...] = (Msg("referral.choose_place"), *(ServiceEntry(s.id) for s in places[:MAX_CHOICES]))
    return turn.answer(Reply(parts, nav(*buttons, Button(Msg("nav.back"), p.ChooseKind().pack())), protect=True))


def issue_by_index(turn: Turn, arg: str) -> Outcome:
    service_id, _, index = arg.rpartition(":")
    if not index.isdigit() or int(index) >= len(SERVICE_TYPES):
        return show_menu(turn, Msg("input.stale_button"))
    return issue(turn, service_id, SERVICE_TYPES[int(index)])


def issue(turn: Turn, service_id: str, kind: str) -> Outcome:
    """Give the person a new code for ``kind`` at ``service_id``, within the limits."""
    blocked = _needs(turn)
    if blocked is not None:
        return blocked
    assert turn.state is not None
    commune = turn.state.commune
    assert commune is not None
    service = next((s for s in _services_here(turn) if s.id == service_id), None)
    if service is None or kind not in referral_types(service):
        return show_menu(turn, Msg("input.stale_button"))
    facts = turn.facts
    if facts is None:
        return turn.answer(Reply((Msg("referral.unavailable"),), nav()))
    state = turn.state
    month = facts.today.strftime("%Y-%m")
    issued_this_month = state.issued[1] if state.issued and state.issued[0] == month else 0
    if len(state.codes) >= MAX_OPEN_CODES:
        return _list(turn, lead=Msg("referral.limit_open", {"n": MAX_OPEN_CODES}))
    if issued_this_month >= MAX_CODES_PER_MONTH:
        return _list(turn, lead=Msg("referral.limit_month", {"n": MAX_CODES_PER_MONTH}))
    expires = facts.today + dt.timedelta(days=turn.ctx.referral_days - 1)
    held = HeldCode(facts.new_code, service.id, kind, expires)
    new_state = replace(state, codes=(*state.codes, held), issued=(month, issued_this_month + 1)).moved(Step.MENU)
    # PEP cannot wait for a code's 30 days: go today, to an emergency department if this place is closed.
    urgent = (Msg("referral.pep_today", emphasis=Emphasis.URGENT),) if kind == "pep" else ()
    # "They will not ask your name" only where the service agreed to it and the entry is verified.
    no_name = (Msg("referral.no_name"),) if service.verified and service.no_name_asked else ()
    valid = () if kind == "pep" else (Dated("referral.expires", expires),)
    parts: tuple[Text, ...] = (
        *urgent,
        Msg("referral.issued", {"code": display(held.code)}, emphasis=Emphasis.CODE),
        ServiceEntry(service.id),
        Msg("referral.how_to_use"),
        *no_name,
        *valid,
    )
    effects = (
        IssueReferral(held.code, service.id, kind, commune, expires),
        Engaged("referral"),
    )
    buttons = nav(Button(Msg("referral.mine"), p.MyCodes().pack()))
    return turn.answer(Reply(parts, buttons, protect=True), state=new_state, effects=effects)


def my_codes(turn: Turn) -> Outcome:
    if turn.state is None:
        return _needs(turn) or show_menu(turn)
    return _list(turn)


def _list(turn: Turn, *, lead: Msg | None = None) -> Outcome:
    assert turn.state is not None
    codes = turn.state.codes
    parts: list[Text] = [lead] if lead else []
    if not codes:
        parts.append(Msg("referral.none_held"))
        return turn.answer(Reply(tuple(parts), nav(Button(Msg("referral.get"), p.ChooseKind().pack()))), state=turn.state.moved(Step.MENU))
    parts.append(Msg("referral.held_title"))
    for held in codes:
        parts.append(Msg("referral.held", {"code": display(held.code)}, emphasis=Emphasis.CODE))
        parts.append(ServiceName(held.service))
        parts.append(Dated("referral.expires", held.expires))
    cancel = [
        Button(Msg("referral.cancel", {"code": display(held.code)}), p.AskCancel(held.code).pack()) for held in codes
    ]
    more = [Button(Msg("referral.get"), p.ChooseKind().pack())] if len(codes) < MAX_OPEN_CODES else []
    return turn.answer(Reply(tuple(parts), nav(*more, *cancel), protect=True), state=turn.state.moved(Step.MENU))


def ask_cancel(turn: Turn, code: str) -> Outcome:
    if turn.state is None or not REFERRAL_CODE.match(code) or code not in {h.code for h in turn.state.codes}:
        return _stale(turn)
    buttons = (Button(Msg("referral.cancel_yes"), p.ConfirmCancel(code).pack()), Button(Msg("referral.cancel_no"), p.MyCodes().pack()), QUICK_EXIT)
    return turn.answer(Reply((Msg("referral.cancel_confirm", {"code": display(code)}),), buttons, protect=True))


def cancel(turn: Turn, code: str) -> Outcome:
    if turn.state is None or code not in {h.code for h in turn.state.codes}:
        return _stale(turn)
    kept = tuple(held for held in turn.state.codes if held.code != code)
    state = replace(turn.state, codes=kept)
    cancelled = replace(turn, state=state)
    outcome = _list(cancelled, lead=Msg("referral.cancelled", {"code": display(code)}))
    return replace(outcome, effects=(CancelReferral(code),))


def _stale(turn: Turn) -> Outcome:
    """An old button for a code that is no longer held (used, expired or cancelled)."""
    if turn.state is None:
        return show_menu(turn, Msg("input.stale_button"))
    return _list(turn, lead=Msg("referral.not_held"))


def still_held(codes: tuple[HeldCode, ...], today: dt.date) -> tuple[HeldCode, ...]:
    """Codes that have not expired (the runtime also drops used and cancelled ones)."""
    return tuple(held for held in codes if held.expires >= today)
