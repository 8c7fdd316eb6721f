"""The authorisation matrix: who gets what from every route of the staff app, by method.

One row per route (and method, and object acted on), one column per persona:

    anonymous · staff of commune A · staff of commune B (same province) ·
    admin of another province · national admin

A page added later adds its row here; test_every_route_has_a_row fails until it does. Every
POST carries a valid CSRF token (CSRF has its own tests), so what is tested is authorisation.
Placeholders in paths and form values: {victim} (an account in commune A), {victim_other}
(an account in the other province), {peer_a} (a peer link of commune A), {peer_token} (its
educator's page), {persona} (the persona's name, for unique values).

Commune A's staff and commune B's staff work in the same province: every row naming commune A's
data (a peer link, a redeeming place, an export scope) proves that B cannot reach it by editing
a URL, a query parameter or a form field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from bot.bootstrap import Services
from bot.clock import today
from bot.staff.routes import ROUTES
from referrals.peers import add_peer
from tests.staff_fixtures import CSP, PROVINCE_A, WARD_A, WARD_B, StaffClient, personas

pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")
PERSONAS = ("anonymous", "staff_a", "staff_b", "padmin", "admin")
USERNAMES = {"staff_a": "staff-a", "staff_b": "staff-b", "padmin": "padmin", "admin": "admin"}
LOGIN = "→login"  # a 303 to the login page


@dataclass(frozen=True)
class Row:
    method: str
    path: str
    expect: tuple[int | str, int | str, int | str, int | str, int | str]  # in PERSONAS order
    data: dict[str, str] = field(default_factory=dict)
    ends_session: bool = False  # the persona must log in again after this row


MATRIX: tuple[Row, ...] = (
    #   method  path                                       anonymous staff_a staff_b padmin admin
    Row("GET", "/staff/", (LOGIN, 200, 200, 200, 200)),
    Row("GET", "/staff/login", (200, 303, 303, 303, 303)),
    Row("POST", "/staff/login", (401, 401, 401, 401, 401), {"username": "nobody-{persona}", "password": "x" * 12}),
    Row("GET", "/staff/login/code", (303, 303, 303, 303, 303)),
    Row("POST", "/staff/login/code", (303, 303, 303, 303, 303), {"code": "123456"}),
    Row("POST", "/staff/lang", (303, 303, 303, 303, 303), {"lang": "vi", "next": "/staff/"}),
    Row("GET", "/staff/static/staff.css", (200, 200, 200, 200, 200)),
    Row("GET", "/staff/static/other.css", (404, 404, 404, 404, 404)),
    Row("GET", "/staff/password", (LOGIN, 200, 200, 200, 200)),
    Row("POST", "/staff/password", (LOGIN, 400, 400, 400, 400), {"current": "wrong-{persona}", "new": "x", "confirm": "x"}),
    Row("GET", "/staff/totp", (LOGIN, 200, 200, 200, 200)),
    Row("POST", "/staff/totp", (LOGIN, 400, 400, 400, 400), {"code": "000000"}),
    Row("GET", "/staff/services", (LOGIN, 200, 200, 200, 200)),
    Row("GET", "/staff/accounts", (LOGIN, 403, 403, 200, 200)),
    Row("GET", "/staff/accounts/new", (LOGIN, 403, 403, 200, 200)),
    # Creating a staff account in commune A: only a national admin (or Lai Châu's) may.
    Row("POST", "/staff/accounts", (LOGIN, 403, 403, 400, 200),
        {"username": "new-{persona}", "role": "staff", "ward": str(WARD_A), "province": ""}),
    Row("GET", "/staff/accounts/{victim}", (LOGIN, 403, 403, 404, 200)),
    Row("GET", "/staff/accounts/{victim_other}", (LOGIN, 403, 403, 200, 200)),
    Row("GET", "/staff/accounts/999999", (LOGIN, 403, 403, 404, 404)),
    Row("GET", "/staff/accounts/99999999999999999999", (LOGIN, 403, 403, 404, 404)),
    Row("POST", "/staff/accounts/{victim}/deactivate", (LOGIN, 403, 403, 404, 303)),
    Row("POST", "/staff/accounts/{victim}/reactivate", (LOGIN, 403, 403, 404, 303)),
    Row("POST", "/staff/accounts/{victim_other}/deactivate", (LOGIN, 403, 403, 303, 303)),
    Row("POST", "/staff/accounts/{victim_other}/reactivate", (LOGIN, 403, 403, 303, 303)),
    Row("POST", "/staff/accounts/{victim}/password", (LOGIN, 403, 403, 404, 200)),
    Row("POST", "/staff/accounts/{victim_other}/password", (LOGIN, 403, 403, 200, 200)),
    Row("POST", "/staff/accounts/{victim}/totp", (LOGIN, 403, 403, 404, 303), {"required": "on"}),
    Row("POST", "/staff/accounts/{victim_other}/totp", (LOGIN, 403, 403, 303, 303), {"required": "off"}),
    Row("POST", "/staff/accounts/{victim}/totp/reset", (LOGIN, 403, 403, 404, 303)),
    Row("POST", "/staff/accounts/{victim}/counsels", (LOGIN, 403, 403, 404, 303), {"counsels": "on"}),
    Row("POST", "/staff/accounts/{victim_other}/counsels", (LOGIN, 403, 403, 303, 303), {"counsels": "off"}),
    Row("POST", "/staff/accounts/{victim_other}/counsels", (LOGIN, 403, 403, 400, 400), {"counsels": "maybe"}),
    Row("POST", "/staff/accounts/{victim_other}/totp/reset", (LOGIN, 403, 403, 303, 303)),
    Row("GET", "/staff/audit", (LOGIN, 403, 403, 200, 200)),
    # The overview: a province-wide view is for that province's admins and national admins.
    Row("GET", "/staff/?period=2026-03", (LOGIN, 200, 200, 200, 200)),
    Row("GET", "/staff/?period=2026-H9", (LOGIN, 400, 400, 400, 400)),
    Row("GET", "/staff/?province=12", (LOGIN, 404, 404, 404, 200)),
    Row("GET", "/staff/?province=31", (LOGIN, 404, 404, 200, 200)),
    # Redeeming: staff at their own commune only; admins where their scope reaches.
    Row("GET", "/staff/redeem", (LOGIN, 200, 200, 200, 200)),
    Row("GET", "/staff/redeem?province=12", (LOGIN, 200, 200, 404, 200)),
    Row("GET", "/staff/redeem?province=31", (LOGIN, 404, 404, 200, 200)),
    Row("GET", "/staff/redeem?province=12&place=" + str(WARD_A), (LOGIN, 200, 404, 404, 200)),
    Row("POST", "/staff/redeem", (LOGIN, 400, 400, 400, 400), {"code": "xx"}),
    Row("POST", "/staff/redeem", (LOGIN, 400, 404, 404, 400), {"code": "ABCD-EFGH", "place": str(WARD_A)}),
    Row("POST", "/staff/redeem", (LOGIN, 404, 404, 404, 400), {"code": "ABCD-EFGH", "place": "province", "province": "12"}),
    # Peer links of commune A.
    Row("GET", "/staff/peers", (LOGIN, 200, 200, 200, 200)),
    Row("POST", "/staff/peers", (LOGIN, 200, 404, 404, 200), {"alias": "PE {persona}", "ward": str(WARD_A)}),
    Row("POST", "/staff/peers", (LOGIN, 404, 200, 404, 200), {"alias": "PE {persona}", "ward": str(WARD_B)}),
    Row("GET", "/staff/peers/{peer_a}/qr.svg", (LOGIN, 200, 404, 404, 200)),
    Row("GET", "/staff/peers/{peer_a}/qr.png", (LOGIN, 200, 404, 404, 200)),
    Row("GET", "/staff/peers/nosuchlink/qr.png", (LOGIN, 404, 404, 404, 404)),
    Row("GET", "/staff/peers/{peer_a}/qr.gif", (404, 404, 404, 404, 404)),
    Row("POST", "/staff/peers/{peer_a}/deactivate", (LOGIN, 303, 404, 404, 303)),
    Row("POST", "/staff/peers/{peer_a}/activate", (LOGIN, 303, 404, 404, 303)),
    Row("GET", "/staff/peers/{peer_a}/deactivate", (405, 405, 405, 405, 405)),
    # The peer educator's page: public, by its token.
    Row("GET", "/staff/peer/{peer_token}", (200, 200, 200, 200, 200)),
    Row("GET", "/staff/peer/not-a-token", (404, 404, 404, 404, 404)),
    # Estimates and targets: admins of the province; the national policy: national admins.
    Row("GET", "/staff/targets", (LOGIN, 403, 403, 200, 200)),
    Row("GET", "/staff/targets?province=12", (LOGIN, 403, 403, 404, 200)),
    Row("POST", "/staff/targets", (LOGIN, 403, 403, 404, 303),
        {"section": "targets", "province": "12", "year": "2026", "indicator": "reached", "estimate-3390": "100",
         "target-3390": "70"}),
    Row("POST", "/staff/targets", (LOGIN, 403, 403, 404, 404),
        {"section": "targets", "province": "31", "year": "2026", "indicator": "reached", "estimate-3390": "100",
         "target-3390": "70"}),
    Row("POST", "/staff/targets", (LOGIN, 403, 403, 403, 303), {"section": "policy", "threshold": "5", "package": "topic"}),
    # Exports: the scope is checked against the viewer's, whatever the form says.
    Row("GET", "/staff/export", (LOGIN, 200, 200, 200, 200)),
    Row("POST", "/staff/export", (LOGIN, 200, 404, 404, 200), {"period": "2026-H1", "scope": "ward:3390", "format": "csv"}),
    Row("POST", "/staff/export", (LOGIN, 404, 404, 404, 200), {"period": "2026-H1", "scope": "province:12", "format": "csv"}),
    Row("POST", "/staff/export", (LOGIN, 404, 404, 200, 200), {"period": "2026", "scope": "province:31", "format": "dhis2"}),
    Row("POST", "/staff/export", (LOGIN, 404, 404, 404, 200), {"period": "2026", "scope": "all", "format": "xlsx"}),
    Row("GET", "/staff/no-such-page", (404, 404, 404, 404, 404)),
    Row("PUT", "/staff/", (405, 405, 405, 405, 405)),
    Row("GET", "/staff/accounts/{victim}/deactivate", (405, 405, 405, 405, 405)),
    Row("POST", "/staff/logout", (LOGIN, 303, 303, 303, 303), ends_session=True),
    # The counsellor chat: only accounts that counsel (none of these personas does; see
    # tests/bot/staff/test_counselling_web.py for counsellors and their scope).
    Row("GET", "/staff/counselling", (LOGIN, 403, 403, 403, 403)),
    Row("POST", "/staff/counselling/duty", (LOGIN, 403, 403, 403, 403), {"on": "1"}),
    Row("POST", "/staff/counselling/act", (LOGIN, 403, 403, 403, 403), {"type": "claim", "case": "K7Q2"}),
    Row("GET", "/staff/counselling/poll", (LOGIN, 403, 403, 403, 403)),
    Row("GET", "/staff/counselling/ws", (LOGIN, 403, 403, 403, 403)),
    # On-duty hours: admins, each for the provinces they cover.
    Row("GET", "/staff/counselling/hours", (LOGIN, 403, 403, 200, 200)),
    Row("GET", "/staff/counselling/hours?province=12", (LOGIN, 403, 403, 404, 200)),
    Row("GET", "/staff/counselling/hours?province=31&commune=3390", (LOGIN, 403, 403, 404, 404)),
    Row("POST", "/staff/counselling/hours", (LOGIN, 403, 403, 404, 303), {"province": "12", "start0": "08:00", "end0": "17:00"}),
    Row("POST", "/staff/counselling/hours", (LOGIN, 403, 403, 303, 303), {"province": "31", "start0": "08:00", "end0": "17:00"}),
    Row("POST", "/staff/counselling/hours", (LOGIN, 403, 403, 400, 400), {"province": "31", "start0": "17:00", "end0": "08:00"}),
)


def _pattern(path: str) -> re.Pattern[str]:
    """An aiohttp path template as a regular expression ({name} or {name:regex})."""
    out = ""
    pieces = re.split(r"(\{\w+(?::[^{}]+)?\})", path)
    for piece in pieces:
        inner = re.fullmatch(r"\{\w+(?::([^{}]+))?\}", piece)
        out += f"(?:{inner.group(1) or '[^/]+'})" if inner else re.escape(piece)
    return re.compile("^" + out + "$")


def test_every_route_has_a_row() -> None:
    """Each route of the table, by method, is exercised by at least one row of the matrix."""
    sample = {"victim": "1", "victim_other": "2", "peer_a": "abc", "peer_token": "t0k3n"}
    rows = {(row.method, row.path.format(**sample)) for row in MATRIX}
    missing = []
    for route in ROUTES:
        pattern = _pattern("/staff" + route.path if route.path != "/" else "/staff/")
        if not any(method == route.method and pattern.match(path) for method, path in rows):
            missing.append(f"{route.method} /staff{route.path}")
    assert missing == [], f"add a row to MATRIX for: {missing}"


async def _client_for(persona: str, make: Any) -> StaffClient:
    client: StaffClient = make()
    if persona == "anonymous":
        await client.get("/staff/login")
    else:
        response = await client.login(USERNAMES[persona])
        assert response.status == 303 and response.headers["Location"] == "/staff/", persona
    return client


async def test_authorisation_matrix(services: Services, browser_factory: Any) -> None:
    """Every row × persona gets exactly the expected status; pages outside a scope do not leak."""
    ids: dict[str, object] = dict(await personas(services))
    async with services.db.transaction() as db:
        peer = await add_peer(
            db, services.secrets.pepper, alias="PE A", commune=WARD_A, province=PROVINCE_A, today=today(services.clock)
        )
    ids.update(peer_a=peer.link.code, peer_token=peer.stats_token)
    clients = {persona: await _client_for(persona, browser_factory) for persona in PERSONAS}
    failures = []
    for row in MATRIX:
        path = row.path.format(**{k: v for k, v in ids.items()})
        for persona, expected in zip(PERSONAS, row.expect, strict=True):
            client = clients[persona]
            data = {k: v.format(persona=persona) for k, v in row.data.items()}
            if row.method == "GET":
                response, body = await client.get(path)
            elif row.method == "POST":
                response, body = await client.post(path, data)
            else:
                async with client.session.request(row.method, client.url(path), allow_redirects=False) as raw:
                    response, body = raw, await raw.text()
            got: int | str = response.status
            if response.status == 303 and response.headers.get("Location", "").startswith("/staff/login") and expected == LOGIN:
                got = LOGIN
            if got != expected:
                failures.append(f"{row.method} {row.path} as {persona}: expected {expected}, got {got}")
            assert response.headers.get("Content-Security-Policy") == CSP, (row.path, persona)
            assert "Traceback" not in body
            if row.ends_session and persona != "anonymous":
                clients[persona] = await _client_for(persona, browser_factory)
    assert failures == []


async def test_scope_of_lists(services: Services, browser_factory: Any) -> None:
    """Lists show only what is in scope: a province admin's accounts, staff's own services."""
    await personas(services)
    padmin = await _client_for("padmin", browser_factory)
    _, page = await padmin.get("/staff/accounts")
    assert "victim-hp" in page and "padmin" in page
    assert "victim-a" not in page and "staff-a" not in page and ">admin<" not in page
    admin = await _client_for("admin", browser_factory)
    _, page = await admin.get("/staff/accounts")
    for name in ("victim-hp", "victim-a", "staff-a", "staff-b", "padmin"):
        assert name in page

    staff_a = await _client_for("staff_a", browser_factory)
    _, page = await staff_a.get("/staff/services")
    assert "Trạm Y tế xã Bình Lư" in page  # their commune
    assert "Nam Thanh Miện" not in page and "Thành Nam" not in page  # other provinces
    staff_b = await _client_for("staff_b", browser_factory)
    _, page = await staff_b.get("/staff/services")
    assert "Trạm Y tế xã Bình Lư" not in page  # another commune of the same province
    _, page = await padmin.get("/staff/services")
    assert "Nam Thanh Miện" in page and "Bình Lư" not in page
    _, page = await admin.get("/staff/services")
    assert "Nam Thanh Miện" in page and "Bình Lư" in page


@pytest.mark.parametrize("field_name", ["ward", "province"])
async def test_form_fields_cannot_widen_a_scope(services: Services, browser_factory: Any, field_name: str) -> None:
    """A province admin cannot create accounts elsewhere by editing the form's hidden or chosen values."""
    await personas(services)
    padmin = await _client_for("padmin", browser_factory)
    data = (
        {"username": "sneaky", "role": "staff", "ward": str(WARD_A), "province": "31"}
        if field_name == "ward"
        else {"username": "sneaky", "role": "admin", "ward": "", "province": "12"}
    )
    response, page = await padmin.post("/staff/accounts", data)
    assert response.status == 400
    assert "trong phạm vi tỉnh mình phụ trách" in page
    response, page = await padmin.post("/staff/accounts", dict(data, role="admin", ward="", province=""))
    assert response.status == 400, "a province admin cannot create a national admin"
    assert (await padmin.get("/staff/accounts"))[1].count("sneaky") == 0
