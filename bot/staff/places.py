"""Which place a page is about: read from a query or a form, always checked against the viewer.

A staff member's place is their commune and nothing else; a province admin's is their province
or one of its communes; a national admin may choose any. A value outside the viewer's scope is
"not found" (404), like an edited URL anywhere in the app; a value that is not a code at all is
a bad request (400).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from referrals.redeeming import Place
from bot.staff.auth import Viewer
from content.geo import Commune, CommuneIndex
from content.pack import ContentPack, Service
from handlers.services import referrable
from referrals.report import Scope, ScopeKind
from referrals.reporting import province_scope, commune_scope

PROVINCE_PLACE = "province"  # the form value for "a provincial service"


def code_of(raw: str) -> int:
    """A commune or province code as typed (leading zeros allowed); 400 if it is not one."""
    cleaned = raw.strip()
    if not cleaned.isdigit() or len(cleaned) > 6:
        raise web.HTTPBadRequest()
    return int(cleaned)


def communes_of(communes: CommuneIndex, province: int) -> list[Commune]:
    """The province's communes, by name."""
    return sorted((c for c in communes.by_code.values() if c.province_code == province), key=lambda c: c.name)


def province_choices(viewer: Viewer, communes: CommuneIndex) -> list[tuple[int, str]]:
    """The provinces the viewer may choose between (a national admin: all of them)."""
    if viewer.scope.everywhere:
        return sorted(communes.provinces.items(), key=lambda item: item[1])
    province = viewer.scope.province
    if province is None or viewer.scope.commune is not None:
        return []
    return [(province, communes.provinces.get(province, str(province)))]


def chosen_province(viewer: Viewer, communes: CommuneIndex, raw: str | None) -> int | None:
    """The province a page shows for an admin: their own, or a national admin's choice (None: all).

    For staff (a commune, never a whole province) any province given is outside their scope.
    """
    if raw is None or raw.strip() == "":
        return None if viewer.scope.everywhere or viewer.scope.commune is not None else viewer.scope.province
    code = code_of(raw)
    if code not in communes.provinces or not viewer.scope.covers_province(code):
        raise web.HTTPNotFound()
    return code


def commune_in_scope(viewer: Viewer, communes: CommuneIndex, raw: str) -> Commune:
    """A commune the viewer's scope covers; 404 for any other (or none with that code)."""
    commune = communes.get(code_of(raw))
    if commune is None or not viewer.scope.covers_commune(commune.code, commune.province_code):
        raise web.HTTPNotFound()
    return commune


def report_scope(viewer: Viewer, communes: CommuneIndex, province: int | None) -> Scope:
    """What the viewer's overview covers: their commune, a province, or everywhere."""
    if viewer.scope.commune is not None:
        return commune_scope(communes, viewer.scope.commune)
    if province is not None:
        return province_scope(communes, province)
    return Scope(ScopeKind.ALL)


def export_scope(viewer: Viewer, communes: CommuneIndex, raw: str) -> Scope:
    """A report scope chosen in the export form: "ward:3390", "province:12" or "all"."""
    kind, _, code = raw.partition(":")
    if kind == "all" and not code:
        if not viewer.scope.everywhere:
            raise web.HTTPNotFound()
        return Scope(ScopeKind.ALL)
    if kind == "ward":
        return commune_scope(communes, commune_in_scope(viewer, communes, code).code)
    if kind == "province":
        number = code_of(code)
        if number not in communes.provinces or not viewer.scope.covers_province(number):
            raise web.HTTPNotFound()
        return province_scope(communes, number)
    raise web.HTTPBadRequest()


def scope_words(scope: Scope) -> str:
    """A scope as audit detail words: "commune 3390", "province 12", "all provinces"."""
    if scope.kind is ScopeKind.COMMUNE:
        return f"commune {scope.code}"
    if scope.kind is ScopeKind.PROVINCE:
        return f"province {scope.code}"
    return "all provinces"


@dataclass(frozen=True)
class RedeemPlace:
    """Where a code is being used, as the form chose it: a commune or a province's services."""

    place: Place
    province: int
    commune: Commune | None  # None: a provincial service

    @property
    def audit_words(self) -> str:
        if self.commune is not None:
            return f"commune {self.commune.code}"
        return f"province {self.province} (provincial service)"

    @property
    def form_value(self) -> str:
        return str(self.commune.code) if self.commune is not None else PROVINCE_PLACE


class PlaceMissing(Exception):
    """An admin has not chosen where the code is being used yet."""


def redeem_place(viewer: Viewer, communes: CommuneIndex, province_raw: str, place_raw: str) -> RedeemPlace:
    """Where the viewer redeems: staff at their commune; admins where they chose, inside their scope.

    Staff choose nothing, but a place or province sent anyway must be their own (else 404).
    """
    place_raw, province_raw = place_raw.strip(), province_raw.strip()
    if viewer.scope.commune is not None:
        if place_raw:
            if place_raw == PROVINCE_PLACE:
                raise web.HTTPNotFound()
            commune_in_scope(viewer, communes, place_raw)
        if province_raw and code_of(province_raw) != viewer.scope.province:
            raise web.HTTPNotFound()
        own = communes.get(viewer.scope.commune)
        if own is None:
            raise web.HTTPNotFound()
        return RedeemPlace(Place(commune=own.code), own.province_code, own)
    province = chosen_province(viewer, communes, province_raw) if province_raw else None
    if place_raw == PROVINCE_PLACE:
        if province is None and not viewer.scope.everywhere:
            province = viewer.scope.province
        if province is None:
            raise PlaceMissing()
        return RedeemPlace(Place(province=province), province, None)
    if not place_raw:
        raise PlaceMissing()
    commune = commune_in_scope(viewer, communes, place_raw)
    if province is not None and commune.province_code != province:
        raise web.HTTPNotFound()
    return RedeemPlace(Place(commune=commune.code), commune.province_code, commune)


def services_taking_codes_at(pack: ContentPack, where: RedeemPlace) -> list[Service]:
    """The directory's services that take referral codes at ``where``: the commune's own, or the
    province-wide ones for "a provincial service" (a code names a kind of help, not one service)."""
    if where.commune is not None:
        here = [s for s in pack.services if s.coverage == "commune" and s.commune == where.commune.code]
    else:
        here = [s for s in pack.services if s.coverage == "province" and s.province == where.province]
    return [s for s in here if referrable(s)]


def not_asking_names(pack: ContentPack, where: RedeemPlace) -> list[Service]:
    """Those of them whose verified entry says the service agreed not to ask the person's name."""
    return [s for s in services_taking_codes_at(pack, where) if s.verified and s.no_name_asked]
