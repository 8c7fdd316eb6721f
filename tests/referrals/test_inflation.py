"""Indicators nobody can inflate: the web chat's origin checks and its limits per address block.

Requests come through aiohttp's test client on 127.0.0.1, which is configured as a trusted
proxy, so X-Forwarded-For stands for as many visitor addresses as a test needs.
"""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from bot.bootstrap import Services
from bot.clock import FixedClock
from bot.client_address import address_block
from bot.config import Settings, load_settings
from referrals.counters import apply_increments, daily_sums
from referrals.counting import NOT_COUNTED_LIMIT, Increment, Where
from referrals.exports import to_csv, to_table
from referrals.indicators import Policy
from referrals.periods import Period
from referrals.reporting import build_report, province_scope, spike_days, commune_scope
from tests.support.settings import make_settings
from tests.support.web import page_origin
from tests.staff_fixtures import (
    StaffClient,
    add_account,
)

pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")

PEOPLE_PER_HOUR = 3
CODES_PER_HOUR = 2
BINH_LU = 3390


@pytest.fixture
def settings(tmp_path: Path, database_url: str, master_key: str) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        master_key,
        ANTAM_TRUSTED_PROXIES="127.0.0.1",
        ANTAM_NEW_PEOPLE_PER_HOUR=PEOPLE_PER_HOUR,
        ANTAM_CODES_PER_HOUR=CODES_PER_HOUR,
        ANTAM_WEBCHAT_ORIGINS="https://partner.example.org",
    )


own_origin = page_origin


def session_id() -> str:
    return secrets.token_urlsafe(18)


async def say(client: TestClient[Any, Any], session: str, address: str, **message: Any) -> dict[str, Any]:
    response = await client.post(
        "/chat/send", json={"session": session, **message}, headers={"X-Forwarded-For": address}
    )
    assert response.status == 200, await response.text()
    answer: dict[str, Any] = await response.json()
    return answer


async def fake_person(client: TestClient[Any, Any], address: str) -> str:
    """A fresh session that accepts the notice and reads a topic: one person reached."""
    session = session_id()
    await say(client, session, address, payload="c:accept")
    answer = await say(client, session, address, payload="t:pep")
    return str(answer["replies"][0]["text"])


async def totals(services: Services, *metrics: str) -> dict[str, int]:
    async with services.db.transaction() as session:
        sums = await daily_sums(
            session, start=dt.date(2000, 1, 1), end=dt.date(2100, 1, 1), metrics=list(metrics), by=("metric",)
        )
    return {metric: sums.get((metric,), 0) for metric in metrics}


# --- Origin and content type -------------------------------------------------------------------


async def test_websocket_needs_the_pages_origin(client: TestClient[Any, Any]) -> None:
    """A WebSocket from another site's page, or with no Origin at all, is refused before the upgrade."""
    for origin in (None, "https://evil.example", "null", "http://127.0.0.1.evil.example"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect("/chat/ws", origin=origin)
        assert refused.value.status == 403
    for origin in (own_origin(client), "https://partner.example.org"):
        async with client.ws_connect("/chat/ws", origin=origin) as ws:
            await ws.send_json({"session": session_id(), "text": "menu"})
            assert (await ws.receive_json())["replies"]


async def test_post_needs_json_and_the_pages_origin(client: TestClient[Any, Any]) -> None:
    """A cross-site form or text/plain POST gets 415; a JSON POST from another origin gets 403."""
    body = '{"session": "AbCdEfGhIjKlMnOpQrStUvWx01", "text": "menu"}'
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        response = await client.post("/chat/send", data=body, headers={"Content-Type": kind})
        assert response.status == 415, kind
    refused = await client.post(
        "/chat/send", data=body, headers={"Content-Type": "application/json", "Origin": "https://evil.example"}
    )
    assert refused.status == 403
    for origin in (own_origin(client), "https://partner.example.org"):
        allowed = await client.post(
            "/chat/send", data=body, headers={"Content-Type": "application/json", "Origin": origin}
        )
        assert allowed.status == 200
    # No Origin: not a browser on another site (they always send one on a cross-site POST).
    assert (await client.post("/chat/send", data=body, headers={"Content-Type": "application/json"})).status == 200


def test_origins_come_from_the_public_url_and_the_setting() -> None:
    """With ANTAM_PUBLIC_URL the page's origin is that URL's; listed origins are checked as origins."""
    settings = load_settings(
        {"ANTAM_PUBLIC_URL": "https://antam.example.vn", "ANTAM_WEBCHAT_ORIGINS": "https://a.example, http://b.example:8080"},
        env_file=None,
    )
    assert settings.allowed_origins == {"https://antam.example.vn", "https://a.example", "http://b.example:8080"}
    from bot.config import ConfigError

    with pytest.raises(ConfigError, match="ANTAM_WEBCHAT_ORIGINS"):
        load_settings({"ANTAM_WEBCHAT_ORIGINS": "https://a.example/path"}, env_file=None)


# --- address blocks ----------------------------------------------------------------------------


def test_address_blocks() -> None:
    """IPv6 counts per /64; IPv4 per address, or per /24 where asked; mapped IPv4 is IPv4."""
    assert address_block("2001:db8:1:2:aaaa::1") == address_block("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert address_block("2001:db8:1:3::1") != address_block("2001:db8:1:2::1")
    assert address_block("203.0.113.7") == "203.0.113.7/32"
    assert address_block("203.0.113.7", ipv4_prefix=24) == address_block("203.0.113.200", ipv4_prefix=24)
    assert address_block("::ffff:203.0.113.7", ipv4_prefix=24) == "203.0.113.0/24"
    assert address_block("fe80::1%eth0") == "fe80::/64"
    assert address_block("") == ""


async def test_message_limits_count_an_ipv6_64_as_one_address(client: TestClient[Any, Any]) -> None:
    """Rotating addresses inside one /64 does not get round the per-address message limit."""
    statuses = []
    for n in range(60):
        response = await client.post(
            "/chat/send",
            json={"session": session_id(), "text": "menu"},
            headers={"X-Forwarded-For": f"2001:db8:1:2::{n + 1:x}"},
        )
        statuses.append(response.status)
    assert statuses[0] == 200 and 429 in statuses
    other = await client.post(
        "/chat/send", json={"session": session_id(), "text": "menu"}, headers={"X-Forwarded-For": "2001:db8:9:9::1"}
    )
    assert other.status == 200, "another /64 has its own allowance"


# --- new counted people and referral codes per block -------------------------------------------


async def test_new_people_per_block_are_bounded(client: TestClient[Any, Any], services: Services, clock: FixedClock) -> None:
    """Beyond the hourly allowance a block's new people get every answer but are not counted;
    the excess is counted as "not counted (limit)"; other blocks are unaffected, and the
    allowance comes back with time."""
    answers = [await fake_person(client, f"2001:db8:5:6::{n + 1:x}") for n in range(PEOPLE_PER_HOUR + 4)]
    assert len({answer for answer in answers}) == 1, "everyone got the same answer"
    assert "PEP" in answers[0]
    counted = await totals(services, "reached:m", "informed:m", "not_counted_limit", "consented")
    assert counted["reached:m"] == PEOPLE_PER_HOUR and counted["informed:m"] == PEOPLE_PER_HOUR
    assert counted["not_counted_limit"] == 4
    # IPv4: one /24 is one block for new people (ANTAM_IPV4_BLOCK_PREFIX=24 by default).
    for n in range(PEOPLE_PER_HOUR + 1):
        await fake_person(client, f"198.51.100.{n + 1}")
    counted = await totals(services, "reached:m", "not_counted_limit")
    assert counted == {"reached:m": 2 * PEOPLE_PER_HOUR, "not_counted_limit": 5}
    # A person held back is not counted as excess again, but is counted once the block has room.
    session = session_id()
    await say(client, session, "2001:db8:5:6::100", payload="c:accept")
    await say(client, session, "2001:db8:5:6::100", payload="t:pep")
    await say(client, session, "2001:db8:5:6::100", payload="t:prep")
    assert (await totals(services, "not_counted_limit"))["not_counted_limit"] == 6
    clock.advance(hours=1)
    await say(client, session, "2001:db8:5:6::100", payload="t:pep")
    assert (await totals(services, "reached:m"))["reached:m"] == 2 * PEOPLE_PER_HOUR + 1


async def test_referral_codes_per_block_are_bounded(client: TestClient[Any, Any], services: Services) -> None:
    """Fresh sessions from one block cannot take more codes an hour than the block's allowance."""
    shown = []
    for n in range(CODES_PER_HOUR + 2):
        session, address = session_id(), f"203.0.113.{n + 1}"
        await say(client, session, address, payload="c:accept")
        await say(client, session, address, payload=f"w:{BINH_LU}")
        answer = await say(client, session, address, payload="ri:tyt_binh_lu:1")
        shown.append(answer["replies"][0]["text"])
    issued = [text for text in shown if "Mã giới thiệu của bạn" in text]
    assert len(issued) == CODES_PER_HOUR
    assert all("chưa cấp được mã" in text for text in shown[CODES_PER_HOUR:])
    assert (await totals(services, "referral_issued"))["referral_issued"] == CODES_PER_HOUR
    session = session_id()
    await say(client, session, "192.0.2.1", payload="c:accept")
    await say(client, session, "192.0.2.1", payload=f"w:{BINH_LU}")
    answer = await say(client, session, "192.0.2.1", payload="ri:tyt_binh_lu:1")
    assert "Mã giới thiệu của bạn" in answer["replies"][0]["text"], "another block still gets a code"


# --- the report and the overview: not counted (limit), spike markers -----------------------------

MUONG_KIM, LAI_CHAU = 3637, 12


async def reach(services: Services, commune: int, day: dt.date, people: int, *, not_counted: int = 0) -> None:
    """``people`` new people reached in ``commune`` on ``day`` (as the runtime counts them)."""
    where = Where(commune, LAI_CHAU, "web", "")
    increments = [Increment(day, where, metric, count=people) for metric in ("reached:m", "reached:h", "reached:y")]
    if not_counted:
        increments.append(Increment(day, where, NOT_COUNTED_LIMIT, count=not_counted))
    async with services.db.transaction() as session:
        await apply_increments(session, [i for i in increments if i.count])


def test_spike_rule() -> None:
    """A day is a spike above 3 × the median of its 14 days before and above the floor."""
    start = dt.date(2026, 2, 1)
    steady = {start + dt.timedelta(days=n): 4 for n in range(14)}
    day = start + dt.timedelta(days=14)
    assert spike_days({**steady, day: 13}, day, day) == [day], "13 > max(3 × 4, 10)"
    assert spike_days({**steady, day: 12}, day, day) == [], "not above 3 × the median"
    assert spike_days({day: 10}, day, day) == [], "not above the floor"
    assert spike_days({day: 11}, day, day) == [day], "from nothing to more than the floor"
    one_burst = {**steady, start + dt.timedelta(days=3): 500, day: 13}
    assert spike_days(one_burst, day, day) == [day], "an earlier burst does not raise the median"
    assert spike_days({**steady, day: 13}, day, day, floor=20) == [], "the floor is at least the threshold"


async def test_report_shows_not_counted_and_spikes(services: Services) -> None:
    """The report has "not counted (limit)" per commune as a protected table of its own, and the
    spike days of a commune whose count is published — never of one whose count is hidden."""
    for n in range(14):
        await reach(services, BINH_LU, dt.date(2026, 2, 10) + dt.timedelta(days=n), 2)
    await reach(services, BINH_LU, dt.date(2026, 2, 24), 30, not_counted=17)
    period, now = Period.parse("2026-H1"), dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    communes = services.context.communes
    async with services.db.transaction() as session:
        ward = await build_report(
            session, period=period, scope=commune_scope(communes, BINH_LU), communes=communes, policy=Policy(), now=now
        )
    assert ward.not_counted is not None and ward.not_counted.body[0][0].shown == 17
    assert ward.spikes == ((dt.date(2026, 2, 24),),)
    catalogs = services.renderer.catalogs
    csv_text = to_csv(ward, catalogs)
    assert "Không được tính (giới hạn)" in csv_text.splitlines()[0] and "24/02/2026" in csv_text
    assert "Kiểm tra số liệu" in to_table(ward, catalogs)

    # Mường Kim's 3 people are hidden, so Bình Lư's count is masked too (else the total would
    # give Mường Kim's back): its spike marker must go as well.
    await reach(services, MUONG_KIM, dt.date(2026, 2, 20), 3, not_counted=2)
    async with services.db.transaction() as session:
        province = await build_report(
            session, period=period, scope=province_scope(communes, LAI_CHAU), communes=communes, policy=Policy(),
            now=now,
        )
    rows = {line.code: r for r, line in enumerate(province.communes)}
    assert province.people.body[rows[MUONG_KIM]][0].hidden and province.people.body[rows[BINH_LU]][0].hidden
    assert all(days == () for days in province.spikes)
    assert province.not_counted is not None
    assert province.not_counted.body[rows[MUONG_KIM]][0].hidden, "a small not-counted figure is hidden too"


async def test_overview_shows_not_counted_and_spikes(services: Services, browser_factory: Any) -> None:  # noqa: F811
    """The staff overview says how many were not counted (limit) and marks the day of a spike."""
    for n in range(14):
        await reach(services, BINH_LU, dt.date(2026, 2, 10) + dt.timedelta(days=n), 2)
    await reach(services, BINH_LU, dt.date(2026, 2, 24), 30, not_counted=17)
    await add_account(services, "lan", ward=BINH_LU)
    me: StaffClient = browser_factory()
    assert (await me.login("lan")).status == 303
    response, page = await me.get("/staff/?period=2026-H1")
    assert response.status == 200
    assert "Kiểm tra số liệu" in page and "tăng bất thường vào ngày 24/02/2026" in page
    assert "Không được tính (giới hạn): <strong>17</strong>" in page


def test_a_gate_takes_a_token_once_per_event() -> None:
    """A retried transaction asks the gate again; it answers the same and takes nothing more."""
    from bot.admission import BlockLimits

    now = [0.0]
    limits = BlockLimits(people_per_hour=2, codes_per_hour=1, clock=lambda: now[0])
    first = limits.gate(b"block")
    assert first.count_new_person() and first.count_new_person()
    assert limits.gate(b"block").count_new_person(), "one token was left"
    assert not limits.gate(b"block").count_new_person()
    assert limits.gate(b"other").count_new_person(), "blocks are apart"
    now[0] += 1800  # half an hour: one of two tokens back
    assert limits.gate(b"block").count_new_person() and not limits.gate(b"block").count_new_person()
    codes = limits.gate(b"block")
    assert codes.may_issue_code() and codes.may_issue_code(), "asking takes nothing"
    codes.issued_codes(1)
    assert not limits.gate(b"block").may_issue_code()


async def test_no_address_or_block_is_stored_or_logged(
    client: TestClient[Any, Any], services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    """The visitor's address, its block and the block's keyed hash appear in no log and no table."""
    import logging

    from sqlalchemy import text

    from bot.app import channel_of
    from bot.channels.webchat import WebChat
    from bot.client_address import address_block
    from storage.models import Base

    caplog.set_level(logging.DEBUG)
    address = "2001:db8:77:88::1234"
    for _ in range(PEOPLE_PER_HOUR + 2):
        await fake_person(client, address)
    keys = channel_of(client.app, WebChat).keys
    block = address_block(address)
    secrets_ = [address.encode(), block.encode(), b"2001:db8:77:88", keys._hash(b"block", block), keys._hash(b"rate", block)]
    assert not any(s.decode(errors="ignore") in caplog.text for s in secrets_[:3])
    async with services.db.transaction() as session:
        for table in Base.metadata.sorted_tables:
            for row in (await session.execute(text(f"SELECT * FROM {table.name}"))).all():
                for value in row:
                    raw = value if isinstance(value, bytes) else str(value).encode()
                    assert not any(s in raw for s in secrets_), table.name
