"""The staff app's working pages through aiohttp's test server, on every backend: the overview,
redeeming codes, peer links and the peer educator's page, estimates and targets, exports.

Counts are put straight into the counters (as the runtime would) where the test is about what a
page shows; codes are issued through the runtime where the test is about redeeming them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import re
from typing import Any

import pytest
from sqlalchemy import select

from bot.bootstrap import Services
from bot.arguments import parser
from bot.referral_commands import run as run_referral_command
from bot.runtime import Runtime
from handlers.types import Inbound
from referrals.counters import apply_increments, month_series
from referrals.counting import REFERRAL_ISSUED, Increment, Where
from referrals.indicators import load_policy, set_target, set_threshold, targets_for
from referrals.peers import add_peer
from referrals.periods import PeriodKind
from storage.referral_models import PeerLink
from storage.staff import AuditEntry, Role
from tests.staff_fixtures import (
    CSP,
    PROVINCE_A,
    WARD_A,
    WARD_B,
    StaffClient,
    add_account,
)

pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")
MARCH = dt.date(2026, 3, 2)


def h1(page: str) -> str:
    match = re.search(r"<h1>(.*?)</h1>", page, re.S)
    return match.group(1).strip() if match else ""


def without_tokens(page: str) -> str:
    """The page without its random CSRF tokens (which could hold any digits)."""
    return re.sub(r'name="csrf" value="[^"]*"', "", page)


def shows_number(page: str, value: str) -> bool:
    """Whether ``value`` appears as a number of its own (not inside 2026, 137.5 or a token)."""
    return re.search(rf"(?<![\w.,/:-]){re.escape(value)}(?![\w.,%])", without_tokens(page)) is not None


async def count(
    services: Services, commune: int, metric: str, n: int, *, day: dt.date = MARCH, channel: str = "telegram",
    peer: str = "", detail: str = "",
) -> None:
    """Add ``n`` to one counter, as the runtime's effects would."""
    found = services.context.communes.get(commune)
    province = found.province_code if found else 0
    async with services.db.transaction() as db:
        await apply_increments(db, [Increment(day, Where(commune, province, channel, peer), metric, detail, n)])


async def reach(services: Services, commune: int, n: int, *, day: dt.date = MARCH, **where: str) -> None:
    """``n`` people reached on ``day``, counted for its month, half-year and year."""
    for kind in PeriodKind:
        await count(services, commune, f"reached:{kind.value}", n, day=day, **where)


async def audit_entries(services: Services, action: str) -> list[AuditEntry]:
    async with services.db.transaction() as db:
        return list((await db.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id))).all())


async def signed_in(make: Any, username: str) -> StaffClient:
    client: StaffClient = make()
    response = await client.login(username)
    assert response.status == 303 and response.headers["Location"] == "/staff/", username
    return client


# --- the overview -----------------------------------------------------------------------------


async def test_overview_hides_a_small_count_and_its_percentage(services: Services, browser_factory: Any) -> None:
    """A commune with 3 people reached shows "<5", no percentage and no bar; shown counts show fully."""
    await add_account(services, "staff-a", ward=WARD_A)
    await reach(services, WARD_A, 3)
    await reach(services, WARD_A, 12, channel="zalo", day=dt.date(2026, 1, 15))
    await count(services, WARD_A, REFERRAL_ISSUED, 3, detail="hiv_testing")
    async with services.db.transaction() as db:
        await set_target(db, year=2026, commune=WARD_A, province=PROVINCE_A, indicator="reached", estimate=1000,
                         target_percent=80, now=services.clock.now())
    me = await signed_in(browser_factory, "staff-a")

    response, page = await me.get("/staff/?period=2026-03")
    assert response.status == 200 and h1(page) == "Trang chủ"
    assert "Tháng 3/2026" in page and "&lt;5" in page
    assert "<progress" not in page, "no bar for a hidden count"
    assert "Số được ẩn để bảo vệ danh tính nên không có tỷ lệ" in page
    assert not shows_number(page, "0,3") and "0.3" not in page, "the percentage of a hidden count is hidden"
    # The trend: March hatched with "<5", January (12) shown; hidden values in no attribute or title.
    svg = page.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert 'fill="url(#hatch)"' in svg and ">&lt;5</text>" in svg and ">12</text>" in svg
    assert "Tháng 3/2026: &lt;5" in svg and "Tháng 1/2026: 12" in svg
    assert "<title" in svg and "<desc" in svg and "style=" not in page and "<script" not in page
    assert "data-" not in page

    response, page = await me.get("/staff/")  # the current half-year: 15 people of 1,000
    assert "6 tháng đầu năm 2026" in page
    assert '<progress class="bar" max="100" value="1.5"' in page and "1,5 %" in page and "chỉ tiêu 80,0 %" in page
    assert "Chưa đạt" in page and "15 trên ước tính 1.000 người" in page
    # Reach by channel: zalo 12 shown, telegram 3 hidden, so the total must not give it back.
    channels = page.split("Tiếp cận theo kênh", 1)[1].split("</table>", 1)[0]
    assert "&lt;5" in channels and ">12<" not in channels and "*" in channels
    referrals = page.split("Mã giới thiệu theo loại dịch vụ", 1)[1].split("</table>", 1)[0]
    assert "Xét nghiệm HIV" in referrals and "&lt;5" in referrals and ">3<" not in referrals


async def test_no_hidden_value_appears_anywhere(services: Services, browser_factory: Any) -> None:
    """With the threshold at 50, distinctive hidden counts (47 people, 29 and 18 by month) are nowhere."""
    await add_account(services, "staff-a", ward=WARD_A)
    async with services.db.transaction() as db:
        await set_threshold(db, 50, now=services.clock.now())
        await set_target(db, year=2026, commune=WARD_A, province=PROVINCE_A, indicator="reached", estimate=1000,
                         target_percent=70, now=services.clock.now())
    await count(services, WARD_A, "reached:m", 29, day=dt.date(2026, 1, 10))
    await count(services, WARD_A, "reached:m", 18, day=MARCH, channel="web")
    for kind in ("h", "y"):
        await count(services, WARD_A, f"reached:{kind}", 29, day=dt.date(2026, 1, 10))
        await count(services, WARD_A, f"reached:{kind}", 18, day=MARCH, channel="web")
    me = await signed_in(browser_factory, "staff-a")
    response, page = await me.get("/staff/?period=2026-H1")
    assert response.status == 200 and "&lt;50" in page
    for value in ("47", "29", "18", "4,7", "4.7"):
        assert not shows_number(page, value), value
    svg = page.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert svg.count('fill="url(#hatch)"') == 2 and svg.count(">&lt;50</text>") == 2
    # The scale comes from the threshold and shown values only: both hidden bars are the same height.
    heights = re.findall(r'<rect x="[^"]+" y="[^"]+" width="[^"]+" height="([^"]+)" fill="url\(#hatch\)"', svg)
    assert len(set(heights)) == 1


async def test_province_admin_sees_every_commune(services: Services, browser_factory: Any) -> None:
    """A province admin gets a card per commune, the whole province's line, and a link to enter estimates."""
    await add_account(services, "lc-admin", Role.ADMIN, province=PROVINCE_A)
    await add_account(services, "boss", Role.ADMIN)
    await add_account(services, "staff-b", ward=WARD_B)
    await reach(services, WARD_A, 40)
    await reach(services, WARD_B, 25, channel="web")
    async with services.db.transaction() as db:
        await set_target(db, year=2026, commune=WARD_A, province=PROVINCE_A, indicator="reached", estimate=50,
                         target_percent=70, now=services.clock.now())
        created = await add_peer(db, services.secrets.pepper, alias="Nhóm BL 07", commune=WARD_A,
                                 province=PROVINCE_A, today=MARCH)
    await reach(services, WARD_A, 7, peer=created.link.code)
    admin = await signed_in(browser_factory, "lc-admin")
    response, page = await admin.get("/staff/")
    assert response.status == 200
    assert "Xã Bình Lư" in page and "Xã Mường Kim" in page and "Toàn địa bàn" in page
    assert "94,0 %" in page and "Đạt chỉ tiêu" in page  # 47 of 50 against 70 %
    assert "chưa có ước tính" in page and '/staff/targets?year=2026&amp;province=12' in page
    peers = page.split("Tiếp cận theo đường dẫn đồng đẳng", 1)[1].split("</table>", 1)[0]
    assert "Nhóm BL 07" in peers and ">7<" in peers and created.link.code not in page
    assert "Nam Thanh Miện" not in page

    staff_b = await signed_in(browser_factory, "staff-b")
    _, page = await staff_b.get("/staff/")
    assert "Xã Mường Kim" in page and "Xã Bình Lư" not in page and "Nhóm BL 07" not in page
    assert "/staff/targets" not in page and "quản trị viên của tỉnh" in page
    assert (await staff_b.get("/staff/?province=12"))[0].status == 404
    assert (await staff_b.get("/staff/?period=2026-X9"))[0].status == 400

    national = await signed_in(browser_factory, "boss")
    _, page = await national.get("/staff/?province=12")
    assert "Xã Mường Kim" in page and "Xã Bình Lư" in page
    _, page = await national.get("/staff/?province=31")
    assert "Xã Bình Lư" not in page
    assert (await national.get("/staff/?province=99"))[0].status == 404
    await national.post("/staff/lang", {"lang": "en", "next": "/staff/"})
    _, page = await national.get("/staff/")
    assert h1(page) == "Home" and "Share reached against the target" in page and "Reach by channel" in page


async def test_month_series(services: Services) -> None:
    """The monthly trend query gives every month asked for, narrowed to a commune or a province."""
    await count(services, WARD_A, "reached:m", 4, day=dt.date(2026, 1, 3))
    await count(services, WARD_B, "reached:m", 6, day=dt.date(2026, 1, 20))
    await count(services, WARD_A, "reached:m", 2, day=MARCH)
    months = [dt.date(2026, m, 1) for m in (1, 2, 3)]
    async with services.db.transaction() as db:
        assert await month_series(db, months=months, metric="reached:m", commune=WARD_A) == dict(zip(months, [4, 0, 2]))
        assert await month_series(db, months=months, metric="reached:m", province=PROVINCE_A) == dict(zip(months, [10, 0, 2]))
        assert await month_series(db, months=months, metric="reached:m", province=31) == dict(zip(months, [0, 0, 0]))


# --- redeeming ------------------------------------------------------------------------------


async def _code(runtime: Runtime, user: str, *, accept: bool = True) -> str:
    """A person accepts, chooses Bình Lư and asks for an HIV-test code; the code shown."""
    steps = (["c:accept"] if accept else []) + [f"w:{WARD_A}", "ri:tyt_binh_lu:1"]
    shown = ""
    for payload in steps:
        for reply in await runtime.handle(Inbound("telegram", user, payload=payload)):
            shown = reply.text
    line = next(line for line in shown.splitlines() if "Mã giới thiệu của bạn" in line)
    return line.split(": ")[1]


async def test_redeeming_through_the_form(services: Services, runtime: Runtime, browser_factory: Any) -> None:
    """Redeemed, already used, another commune's, throttled: the command line's outcomes, audited without the code."""
    await add_account(services, "staff-a", ward=WARD_A)
    await add_account(services, "staff-b", ward=WARD_B)
    first, second = await _code(runtime, "p1"), await _code(runtime, "p2")
    staff_a = await signed_in(browser_factory, "staff-a")
    response, page = await staff_a.get("/staff/redeem")
    assert response.status == 200 and "Xã Bình Lư (Lai Châu)" in page and 'name="place"' not in page

    response, _ = await staff_a.post("/staff/redeem", {"code": first.lower().replace("-", " ")})
    assert response.status == 303 and response.headers["Location"] == "/staff/redeem?done=hiv_testing"
    _, page = await staff_a.get(response.headers["Location"])
    assert "Đã xác nhận mã: xét nghiệm HIV, ngày 02/03/2026." in page
    response, page = await staff_a.post("/staff/redeem", {"code": first})
    assert response.status == 400 and "Mã này đã được dùng ngày 02/03/2026." in page
    response, page = await staff_a.post("/staff/redeem", {"code": "xx"})
    assert response.status == 400 and "Mã không đúng dạng" in page
    response, page = await staff_a.post("/staff/redeem", {"code": "ABCD-EFGH"})
    assert response.status == 400 and "Không tìm thấy mã này" in page

    staff_b = await signed_in(browser_factory, "staff-b")
    response, page = await staff_b.post("/staff/redeem", {"code": second})
    assert response.status == 400 and "Mã này dành cho Xã Bình Lư (Lai Châu), không phải nơi này." in page
    # Naming commune A in the form does not move staff B there.
    response, _ = await staff_b.post("/staff/redeem", {"code": second, "place": str(WARD_A)})
    assert response.status == 404
    for n in range(9):
        response, _ = await staff_b.post("/staff/redeem", {"code": f"ABCD-{n:04d}"})
        assert response.status == 400
    response, page = await staff_b.post("/staff/redeem", {"code": second})
    assert response.status == 429 and "Đã nhập sai quá nhiều lần; thử lại sau" in page
    assert int(response.headers["Retry-After"]) > 0

    entries = await audit_entries(services, "redemption")
    assert [(e.actor, e.detail, e.province) for e in entries] == [
        ("staff-a", "redeemed a code for commune 3390", PROVINCE_A)
    ]
    async with services.db.transaction() as db:
        details = " ".join((await db.scalars(select(AuditEntry.detail))).all())
    for code in (first, second):
        assert code not in details and code.replace("-", "") not in details

    await staff_a.post("/staff/lang", {"lang": "en", "next": "/staff/redeem"})
    response, page = await staff_a.post("/staff/redeem", {"code": first})
    assert response.status == 400 and "This code was already used on 02/03/2026." in page
    assert h1(page) == "Redeem a referral code"


async def test_admins_choose_where_a_code_is_used(services: Services, runtime: Runtime, browser_factory: Any) -> None:
    """A province admin redeems at a commune or a provincial service; a national admin picks the province first."""
    await add_account(services, "lc-admin", Role.ADMIN, province=PROVINCE_A)
    await add_account(services, "boss", Role.ADMIN)
    codes = [await _code(runtime, f"p{i}") for i in range(3)]
    admin = await signed_in(browser_factory, "lc-admin")
    _, page = await admin.get("/staff/redeem")
    assert 'value="province"' in page and "Cơ sở phục vụ toàn tỉnh (Lai Châu)" in page and "Xã Mường Kim" in page
    response, page = await admin.post("/staff/redeem", {"code": codes[0]})
    assert response.status == 400 and "Vui lòng chọn nơi dùng mã." in page
    response, page = await admin.post("/staff/redeem", {"code": codes[0], "place": str(WARD_B)})
    assert response.status == 400 and "Mã này dành cho Xã Bình Lư" in page
    response, _ = await admin.post("/staff/redeem", {"code": codes[0], "place": "province"})
    assert response.status == 303 and "place=province" in response.headers["Location"]
    _, page = await admin.get(response.headers["Location"])
    assert "Đã xác nhận mã" in page and '<option value="province" selected>' in page
    assert (await admin.post("/staff/redeem", {"code": codes[1], "place": "11284"}))[0].status == 404
    assert (await admin.post("/staff/redeem", {"code": codes[1], "place": "province", "province": "31"}))[0].status == 404

    national = await signed_in(browser_factory, "boss")
    _, page = await national.get("/staff/redeem")
    assert 'name="province"' in page and 'name="code"' not in page, "a province first"
    _, page = await national.get("/staff/redeem?province=12")
    assert 'name="code"' in page and "Xã Bình Lư" in page
    response, _ = await national.post("/staff/redeem", {"code": codes[1], "province": "12", "place": str(WARD_A)})
    assert response.status == 303
    response, _ = await national.post("/staff/redeem", {"code": codes[2], "province": "31", "place": str(WARD_A)})
    assert response.status == 404, "a commune outside the chosen province"
    entries = await audit_entries(services, "redemption")
    assert [e.detail for e in entries] == [
        "redeemed a code for province 12 (provincial service)", "redeemed a code for commune 3390",
    ]


# --- peer links -------------------------------------------------------------------------------


async def test_peer_links(services: Services, runtime: Runtime, browser_factory: Any) -> None:
    """Created with its stats page shown once; QR codes as PNG and SVG; paused and resumed; scoped."""
    await add_account(services, "staff-a", ward=WARD_A)
    await add_account(services, "staff-b", ward=WARD_B)
    staff_a = await signed_in(browser_factory, "staff-a")
    response, page = await staff_a.get("/staff/peers")
    assert response.status == 200 and "Chưa có đường dẫn nào" in page
    response, page = await staff_a.post("/staff/peers", {"alias": "x", "bot": "no"})
    assert response.status == 400 and "Tên gọi cần 2–64 ký tự" in page and "Tên bot Telegram gồm" in page
    response, page = await staff_a.post("/staff/peers", {"alias": "Nhóm BL 07", "bot": "@antam_test_bot"})
    assert response.status == 200 and "Đã tạo đường dẫn" in page
    stats = re.search(r'<code class="stats-url">http://127\.0\.0\.1:8080(/staff/peer/[A-Za-z0-9_-]+)</code>', page)
    assert stats is not None and "chỉ hiển thị một lần" in page
    async with services.db.transaction() as db:
        link = (await db.scalars(select(PeerLink))).one()
    assert f"http://127.0.0.1:8080/?p={link.code}" in page
    assert f"https://t.me/antam_test_bot?start={link.code}" in page
    assert link.commune == WARD_A
    _, listing = await staff_a.get("/staff/peers")
    assert "Nhóm BL 07" in listing and stats.group(1) not in listing, "the stats page is shown once only"

    for kind, content_type, magic in (("svg", "image/svg+xml", b"<svg"), ("png", "image/png", b"\x89PNG")):
        async with staff_a.session.get(staff_a.url(f"/staff/peers/{link.code}/qr.{kind}")) as qr:
            body = await qr.read()
            assert qr.status == 200 and qr.headers["Content-Type"] == content_type
            assert magic in body[:200] and qr.headers["Content-Security-Policy"] == CSP
            assert f"antam-peer-{link.code}-web.{kind}" in qr.headers["Content-Disposition"]
    async with staff_a.session.get(staff_a.url(f"/staff/peers/{link.code}/qr.png?bot=antam_test_bot")) as qr:
        assert qr.status == 200 and "telegram" in qr.headers["Content-Disposition"]
    assert (await staff_a.get(f"/staff/peers/{link.code}/qr.png?bot=x"))[0].status == 400

    staff_b = await signed_in(browser_factory, "staff-b")
    _, page = await staff_b.get("/staff/peers")
    assert "Nhóm BL 07" not in page
    assert (await staff_b.get(f"/staff/peers/{link.code}/qr.svg"))[0].status == 404
    assert (await staff_b.post(f"/staff/peers/{link.code}/deactivate"))[0].status == 404
    assert (await staff_b.post("/staff/peers", {"alias": "sneaky", "ward": str(WARD_A)}))[0].status == 404

    response, _ = await staff_a.post(f"/staff/peers/{link.code}/deactivate")
    assert response.status == 303 and response.headers["Location"] == "/staff/peers?done=deactivated"
    _, page = await staff_a.get("/staff/peers?done=deactivated")
    assert "Đã tạm dừng đường dẫn" in page and "/activate" in page
    async with services.db.transaction() as db:
        assert not (await db.get(PeerLink, link.code)).active  # type: ignore[union-attr]
    assert (await staff_a.post(f"/staff/peers/{link.code}/activate"))[0].status == 303
    entries = await audit_entries(services, "peer_link")
    assert [e.detail for e in entries] == [
        f"created peer link {link.code} for commune 3390",
        f"deactivated peer link {link.code} of commune 3390",
        f"activated peer link {link.code} of commune 3390",
    ]
    await staff_a.post("/staff/lang", {"lang": "en", "next": "/staff/peers"})
    _, page = await staff_a.get("/staff/peers")
    assert h1(page) == "Peer links" and "Pause the link" in page


async def test_the_peer_educators_page(services: Services, browser_factory: Any) -> None:
    """Public by its token: the link's counts this month, half-year and year, small ones hidden; 404 otherwise."""
    async with services.db.transaction() as db:
        created = await add_peer(db, services.secrets.pepper, alias="ĐĐ 07", commune=WARD_A, province=PROVINCE_A,
                                 today=MARCH)
    code = created.link.code
    await reach(services, WARD_A, 3, peer=code)
    await reach(services, WARD_A, 8, peer=code, day=dt.date(2026, 1, 5))
    await count(services, WARD_A, REFERRAL_ISSUED, 6, peer=code, detail="prep")
    anyone: StaffClient = browser_factory()
    response, page = await anyone.get(f"/staff/peer/{created.stats_token}")
    assert response.status == 200 and response.headers["X-Robots-Tag"] == "noindex, nofollow"
    assert response.headers["Referrer-Policy"] == "no-referrer" and response.headers["Cache-Control"] == "no-store"
    assert "ĐĐ 07" in page and "Xã Bình Lư (Lai Châu)" in page
    rows = re.findall(r'<tr><th scope="row">([^<]+)</th>(.*?)</tr>', page)
    assert [label for label, _ in rows] == ["Tháng 3/2026", "6 tháng đầu năm 2026", "Năm 2026"]
    cells = [re.findall(r"<td>(.*?)</td>", body) for _, body in rows]
    assert [re.sub(r"<[^>]+>", "", c) for c in cells[0]] == ["&lt;5", "6", "0"]
    assert [re.sub(r"<[^>]+>", "", c) for c in cells[1]] == ["11", "6", "0"]
    assert "đăng xuất" not in page.lower()
    assert (await anyone.get("/staff/peer/not-a-real-token"))[0].status == 404
    assert (await anyone.get("/staff/peer/" + "a" * 80))[0].status == 404
    await anyone.post("/staff/lang", {"lang": "en", "next": f"/staff/peer/{created.stats_token}"})
    _, page = await anyone.get(f"/staff/peer/{created.stats_token}")
    assert h1(page) == "Figures of the link" and "Reached" in page and "Codes used" in page


async def test_peer_page_is_rate_limited(services: Services, browser_factory: Any) -> None:
    """Many requests from one address are slowed down (the token is the only key to the page)."""
    anyone: StaffClient = browser_factory()
    statuses = [(await anyone.get(f"/staff/peer/guess{n}"))[0].status for n in range(31)]
    assert statuses[:30] == [404] * 30 and statuses[30] == 429


async def test_peer_add_prints_the_stats_page_once(services: Services, browser_factory: Any, tmp_path: Any) -> None:
    """`antam peer add` prints the peer educator's page, which then opens in the web app."""
    args = parser().parse_args(["peer", "add", "--ward", "3390", "--alias", "PE 01", "--out", str(tmp_path)])
    assert isinstance(args, argparse.Namespace)
    out = io.StringIO()
    assert await run_referral_command(services, args, out) == 0
    printed = out.getvalue()
    found = re.search(r"http://127\.0\.0\.1:8080(/staff/peer/[A-Za-z0-9_-]+)", printed)
    assert found is not None and "Shown only this once" in printed and "antam peer stats" not in printed
    response, page = await browser_factory().get(found.group(1))
    assert response.status == 200 and "PE 01" in page


# --- estimates and targets --------------------------------------------------------------------


async def test_targets_are_validated_and_saved(services: Services, browser_factory: Any) -> None:
    """Wrong values are named in Vietnamese and nothing is saved; right ones are saved and audited."""
    await add_account(services, "lc-admin", Role.ADMIN, province=PROVINCE_A)
    admin = await signed_in(browser_factory, "lc-admin")
    response, page = await admin.get("/staff/targets")
    assert response.status == 200 and 'name="estimate-3390"' in page and 'name="target-3637"' in page
    assert "Nam Thanh Miện" not in page and 'name="threshold"' not in page, "the policy is national"
    base = {"section": "targets", "province": "12", "year": "2026", "indicator": "reached"}
    response, page = await admin.post(
        "/staff/targets", {**base, "estimate-3390": "nhiều", "target-3390": "70", "estimate-3637": "1.200", "target-3637": "150"}
    )
    assert response.status == 400
    assert "Xã Bình Lư: ước tính phải là số nguyên từ 1 đến 10.000.000." in page
    assert "Xã Mường Kim: chỉ tiêu phải là tỷ lệ phần trăm lớn hơn 0 và không quá 100." in page
    assert 'aria-invalid="true"' in page and 'value="nhiều"' in page
    async with services.db.transaction() as db:
        assert await targets_for(db, year=2026, province=PROVINCE_A) == {}
    response, _ = await admin.post(
        "/staff/targets", {**base, "estimate-3390": "1.200", "target-3390": "80,5", "estimate-3637": "", "target-3637": "70"}
    )
    assert response.status == 303 and response.headers["Location"].endswith("done=saved")
    async with services.db.transaction() as db:
        saved = await targets_for(db, year=2026, province=PROVINCE_A)
    assert {k: (v.estimate, v.target_percent) for k, v in saved.items()} == {(3390, "reached"): (1200, 80.5)}
    _, page = await admin.get(response.headers["Location"])
    assert "Đã lưu ước tính và chỉ tiêu." in page and 'value="1200"' in page and 'value="80.5"' in page
    entries = await audit_entries(services, "settings")
    assert [e.detail for e in entries] == ["set reached estimates and targets 2026 for 1 commune(s) in province 12"]
    _, page = await admin.get("/staff/audit")
    assert "thay đổi thiết lập" in page and "set reached estimates and targets 2026" in page

    # Another province's commune or province, even in a field name: outside the scope.
    assert (await admin.post("/staff/targets", {**base, "province": "31"}))[0].status == 404
    assert (await admin.post("/staff/targets", {**base, "estimate-11284": "5", "target-11284": "70"}))[0].status == 404
    assert (await admin.post("/staff/targets", {"section": "policy", "threshold": "10", "package": "topic"}))[0].status == 403
    assert (await admin.get("/staff/targets?year=20x6"))[0].status == 400
    await admin.post("/staff/lang", {"lang": "en", "next": "/staff/targets"})
    _, page = await admin.get("/staff/targets")
    assert h1(page) == "Estimates and targets" and "Estimate (people)" in page


async def test_national_admin_sets_the_package_and_threshold(services: Services, browser_factory: Any) -> None:
    """Only a national admin changes the minimum package and the small-cell threshold."""
    await add_account(services, "boss", Role.ADMIN)
    admin = await signed_in(browser_factory, "boss")
    _, page = await admin.get("/staff/targets")
    assert "Chọn tỉnh, thành phố" in page and 'name="threshold"' in page
    response, page = await admin.post("/staff/targets", {"section": "policy", "threshold": "1"})
    assert response.status == 400 and "từ 2 đến 50" in page and "ít nhất một nội dung" in page
    response, _ = await admin.post("/staff/targets", {"section": "policy", "threshold": "10", "package": "referral"})
    assert response.status == 303
    async with services.db.transaction() as db:
        policy = await load_policy(db)
    assert policy.threshold == 10 and policy.package == frozenset({"referral"})
    assert [e.detail for e in await audit_entries(services, "settings")] == [
        "set minimum package to referral and small-cell threshold to 10"
    ]
    _, page = await admin.get("/staff/targets?province=31&year=2027&indicator=connected")
    assert "Xã Nam Thanh Miện" in page and "năm 2027" in page and "Được kết nối dịch vụ" in page


# --- exports --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["xlsx", "csv", "dhis2"])
async def test_exports(services: Services, browser_factory: Any, fmt: str) -> None:
    """Each format downloads with its type and file name, small cells hidden, and is audited."""
    await add_account(services, "staff-a", ward=WARD_A)
    await reach(services, WARD_A, 3)
    me = await signed_in(browser_factory, "staff-a")
    response, page = await me.get("/staff/export")
    assert response.status == 200 and "Xã Bình Lư (Lai Châu)" in page and 'value="2026-H1" selected' in page
    assert me.token is not None
    async with me.session.post(
        me.url("/staff/export"), data={"csrf": me.token, "period": "2026-H1", "scope": f"ward:{WARD_A}", "format": fmt}
    ) as download:
        body = await download.read()
        headers = download.headers
    assert download.status == 200 and headers["Cache-Control"] == "no-store"
    extension, content_type = {
        "xlsx": ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        "csv": ("csv", "text/csv; charset=utf-8"),
        "dhis2": ("json", "application/json"),
    }[fmt]
    assert headers["Content-Type"] == content_type
    assert headers["Content-Disposition"] == f'attachment; filename="antam-2026-H1-xa-3390.{extension}"'
    if fmt == "xlsx":
        assert body.startswith(b"PK")
    elif fmt == "csv":
        text = body.decode("utf-8-sig")
        assert "Xã Bình Lư" in text and "<5" in text
    else:
        payload = json.loads(body)
        assert payload["period"] == "2026S1" and all(value["value"] != "3" for value in payload["dataValues"])
    entries = await audit_entries(services, "export")
    assert [(e.actor, e.detail, e.province) for e in entries] == [("staff-a", f"exported 2026-H1 commune 3390 {fmt}", 12)]


async def test_export_scope_and_errors(services: Services, browser_factory: Any) -> None:
    """Staff export their commune only; a province admin the province; bad values say why."""
    await add_account(services, "staff-b", ward=WARD_B)
    await add_account(services, "lc-admin", Role.ADMIN, province=PROVINCE_A)
    staff_b = await signed_in(browser_factory, "staff-b")
    base = {"period": "2026", "format": "csv"}
    assert (await staff_b.post("/staff/export", {**base, "scope": f"ward:{WARD_A}"}))[0].status == 404
    assert (await staff_b.post("/staff/export", {**base, "scope": "province:12"}))[0].status == 404
    assert (await staff_b.post("/staff/export", {**base, "scope": "all"}))[0].status == 404
    assert (await staff_b.post("/staff/export", {**base, "scope": "nowhere"}))[0].status == 400
    response, page = await staff_b.post("/staff/export", {**base, "scope": f"ward:{WARD_B}", "period": "2026-H3"})
    assert response.status == 400 and "Kỳ báo cáo không hợp lệ" in page
    response, page = await staff_b.post("/staff/export", {**base, "scope": f"ward:{WARD_B}", "format": "pdf"})
    assert response.status == 400 and "Vui lòng chọn định dạng" in page
    assert await audit_entries(services, "export") == []

    admin = await signed_in(browser_factory, "lc-admin")
    _, page = await admin.get("/staff/export")
    assert 'value="province:12"' in page and "Toàn tỉnh Lai Châu" in page and 'value="all"' not in page
    async with admin.session.post(
        admin.url("/staff/export"), data={"csrf": admin.token or "", "period": "2026-03", "scope": "province:12", "format": "xlsx"}
    ) as download:
        assert download.status == 200
        assert download.headers["Content-Disposition"] == 'attachment; filename="antam-2026-03-tinh-12.xlsx"'
    assert (await admin.post("/staff/export", {**base, "scope": "province:31"}))[0].status == 404
    await admin.post("/staff/lang", {"lang": "en", "next": "/staff/export"})
    _, page = await admin.get("/staff/export")
    assert h1(page) == "Export the report" and "Whole province: Lai Châu" in page


# --- CSRF ---------------------------------------------------------------------------------------


async def test_csrf_on_every_new_form(services: Services, browser_factory: Any) -> None:
    """Redeem, peer links, targets and exports refuse a POST without this session's token."""
    await add_account(services, "boss", Role.ADMIN)
    async with services.db.transaction() as db:
        created = await add_peer(db, services.secrets.pepper, alias="PE 01", commune=WARD_A, province=PROVINCE_A,
                                 today=MARCH)
    admin = await signed_in(browser_factory, "boss")
    other: StaffClient = browser_factory()
    await other.get("/staff/login")
    for token in (None, "wrong", other.token):
        extra = {} if token is None else {"csrf": token}
        for path, form in (
            ("/staff/redeem", {"code": "ABCD-EFGH", "province": "12", "place": str(WARD_A)}),
            ("/staff/peers", {"alias": "PE 02", "ward": str(WARD_A)}),
            (f"/staff/peers/{created.link.code}/deactivate", {}),
            (f"/staff/peers/{created.link.code}/activate", {}),
            ("/staff/targets", {"section": "policy", "threshold": "9", "package": "topic"}),
            ("/staff/export", {"period": "2026", "scope": "all", "format": "csv"}),
        ):
            response, page = await admin.post(path, {**form, **extra}, csrf=False)
            assert response.status == 403 and "Biểu mẫu đã hết hạn" in page, path
    async with services.db.transaction() as db:
        assert len((await db.scalars(select(PeerLink))).all()) == 1
        assert (await db.get(PeerLink, created.link.code)).active  # type: ignore[union-attr]
        assert (await load_policy(db)).threshold == 5
        assert (await db.scalars(select(AuditEntry.action))).all() == ["login"]
