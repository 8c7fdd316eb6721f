"""Health and support services near the person: choose a commune, or share a location.

The commune is found from a typed name (with or without diacritics) or a button, and kept
in the sealed state of a person who accepted the notice. Services come from the content
pack's directory; details not yet verified are labelled so, and unverified phone numbers are
never shown.
"""

from __future__ import annotations

from dataclasses import replace

from content.geo import distance_km
from content.pack import NOT_REFERRABLE, Service
from handlers import payloads as p
from handlers.common import Outcome, Turn, nav
from handlers.info import topic_button
from handlers.menu import show_menu
from handlers.state import Step
from handlers.types import Button, CommuneName, Engaged, Location, Msg, Reply, ServiceEntry, Text

SERVICE_TOPICS = ("hiv_testing", "prep", "pep", "sti", "condoms", "hiv_treatment", "methadone", "mental_health", "legal_aid")
MAX_CHOICES = 6
NEAREST = 5
NEAREST_WITHIN_KM = 100.0


def referral_types(service: Service) -> list[str]:
    """The kinds of help a referral code to this service can name."""
    return [kind for kind in service.types if kind not in NOT_REFERRABLE]


def referrable(service: Service) -> bool:
    return bool(referral_types(service))


def services_menu(turn: Turn) -> Outcome:
    """Show the services of the person's commune, or ask for it."""
    if turn.state is not None and turn.state.commune is not None:
        return commune_services(turn, turn.state.commune)
    return ask_commune(turn)


def ask_commune(turn: Turn, *, lead: Msg | None = None) -> Outcome:
    pilot = [Button(CommuneName(code), p.CommuneServices(code).pack()) for code in turn.ctx.pack.communes_with_services()[:9]]
    parts: tuple[Text, ...] = (lead, Msg("services.ask_commune")) if lead else (Msg("services.ask_commune"),)
    state = turn.state.moved(Step.AWAIT_COMMUNE) if turn.state else None
    return turn.answer(Reply(parts, nav(*pilot, Button(Msg("services.kinds"), p.ServiceKinds().pack()))), state=state)


def service_kinds(turn: Turn) -> Outcome:
    """The kinds of help, each leading to the topic that says what it is and where it is given."""
    buttons = [topic_button(topic_id) for topic_id in SERVICE_TOPICS if topic_id in turn.ctx.pack.topics]
    return turn.answer(Reply((Msg("services.kinds_title"),), nav(*buttons, Button(Msg("nav.back"), p.Services().pack()))))


def commune_services(turn: Turn, code: int) -> Outcome:
    commune = turn.ctx.communes.get(code)
    if commune is None:
        return show_menu(turn, Msg("input.stale_button"))
    services = turn.ctx.pack.services_for(commune.code, commune.province_code)
    parts: list[Text] = []
    if services:
        parts.append(Msg("services.in_commune", {"commune": commune.label}))
        # The renderer says once, under the list, what a place not yet verified means.
        parts.extend(ServiceEntry(service.id) for service in services)
    else:
        parts.append(Msg("services.none_in_commune", {"commune": commune.label}))
    state = replace(turn.state, commune=commune.code).moved(Step.MENU) if turn.state else None
    referral = [Button(Msg("referral.get"), p.ChooseKind().pack())] if any(referrable(s) for s in services) else []
    buttons = nav(*referral, Button(Msg("services.change_commune"), p.ChangeCommune().pack()), Button(Msg("services.kinds"), p.ServiceKinds().pack()))
    effects = (Engaged("services"),) if services else ()
    return turn.answer(Reply(tuple(parts), buttons, protect=True), state=state, effects=effects)


def commune_typed(turn: Turn, text: str, *, fuzzy: bool) -> Outcome | None:
    """Answer a typed commune name; None when the text names no commune."""
    found = turn.ctx.communes.search(text, fuzzy=fuzzy)
    if not found:
        province = turn.ctx.communes.province_named(text)
        return None if province is None else _communes_of_province(turn, province)
    if len(found) == 1:
        return commune_services(turn, found[0].code)
    buttons = [Button(CommuneName(c.code), p.CommuneServices(c.code).pack()) for c in found[:MAX_CHOICES]]
    state = turn.state.moved(Step.AWAIT_COMMUNE) if turn.state else None
    return turn.answer(Reply((Msg("services.which_commune"),), nav(*buttons)), state=state)


def _communes_of_province(turn: Turn, province: int) -> Outcome:
    """Only a province was named: offer its communes in the directory and ask for the commune."""
    listed = [
        code
        for code in turn.ctx.pack.communes_with_services()
        if (commune := turn.ctx.communes.get(code)) is not None and commune.province_code == province
    ]
    buttons = [Button(CommuneName(code), p.CommuneServices(code).pack()) for code in listed[:MAX_CHOICES]]
    name = turn.ctx.communes.provinces[province]
    state = turn.state.moved(Step.AWAIT_COMMUNE) if turn.state else None
    return turn.answer(Reply((Msg("services.commune_in_province", {"province": name}),), nav(*buttons)), state=state)


def commune_not_found(turn: Turn) -> Outcome:
    return ask_commune(turn, lead=Msg("services.commune_not_found"))


def nearest(turn: Turn, location: Location) -> Outcome:
    """List the nearest services that have coordinates, with distances."""
    placed = [
        (distance_km(location.latitude, location.longitude, s.latitude, s.longitude), s)
        for s in turn.ctx.pack.services
        if s.latitude is not None and s.longitude is not None
    ]
    close = sorted((pair for pair in placed if pair[0] <= NEAREST_WITHIN_KM), key=lambda pair: pair[0])[:NEAREST]
    if not close:
        return ask_commune(turn, lead=Msg("services.no_coordinates"))
    parts: list[Text] = [Msg("services.nearest")]
    parts.extend(ServiceEntry(service.id, round(km, 1)) for km, service in close)
    reply = Reply(tuple(parts), nav(Button(Msg("services.change_commune"), p.ChangeCommune().pack())), protect=True)
    return turn.answer(reply, effects=(Engaged("services"),))
