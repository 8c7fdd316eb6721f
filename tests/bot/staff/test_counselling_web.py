"""The counsellor's page over HTTP and its WebSocket (bot/staff/views/counselling.py): who may
open it, the forms, the live events both ways, the outbox to the person, and bad input.

A case is opened through the use case with a person record that keeps a Telegram reply address
(as the person's side will), so what the counsellor sends lands in the real outbox, sealed.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from bot.bootstrap import Services
from bot.changes import COUNSELLING
from bot.record import PersonRecord
from bot.staff import STAFF_APP
from bot.staff.state import DESK
from counselling import cases
from handlers.state import State
from storage import counselling as store
from storage import outbox
from storage.counselling import CasePerson
from storage.outbox import OutboxMessage
from storage.persons import load_record, save_record
from storage.staff import Role, get_by_username as get_account_by_name
from tests.staff_fixtures import PROVINCE_A, WARD_A, WARD_B, StaffClient, add_account

pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")
PSEUDONYM = b"\x03" * 32
ADDRESS = "5550123"


async def person_with_case(services: Services, *, commune: int = WARD_A) -> str:
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        record = PersonRecord(State(commune=commune)).keep_address(ADDRESS, COUNSELLING)
        await save_record(session, ring, PSEUDONYM, record.to_bytes(), today=services.clock.now().date(), new=True)
        opened = await cases.open_for_person(
            session, ring, person=CasePerson(PSEUDONYM, "vi"), commune=commune, province=PROVINCE_A,
            channel="telegram", urgent=False, now=services.clock.now(),
        )
        return opened.handle


async def person_says(services: Services, handle: str, text: str, *, urgent: bool = False) -> None:
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        case = await store.open_case_by_handle(session, handle)
        assert case is not None
        await cases.person_says(session, ring, case.id, text, urgent=urgent, now=services.clock.now())


async def outbox_texts(services: Services) -> list[str]:
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        rows = (await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
        texts: list[str] = []
        for row in rows:
            opened = json.loads(ring.open(row.sealed, outbox.outbox_context(row.dedupe)))
            assert opened["a"] == ADDRESS
            texts.extend(reply["t"] for reply in opened["r"])
        return texts


async def signed_in(browser_factory: Any, name: str) -> StaffClient:
    me: StaffClient = browser_factory()
    assert (await me.login(name)).status == 303
    await me.get("/staff/password")  # this session's CSRF token (login gives a new one)
    return me


def origin(me: StaffClient) -> str:
    return me.url("/").rstrip("/")


async def receive_until(ws: aiohttp.ClientWebSocketResponse, wanted: str, **match: object) -> dict[str, Any]:
    for _ in range(20):
        event = await ws.receive_json(timeout=10)
        if event["type"] == wanted and all(event.get(k) == v for k, v in match.items()):
            return event
    raise AssertionError(f"no {wanted} event {match}")


async def test_who_may_open_the_page(services: Services, server: Any, browser_factory: Any) -> None:
    """Anonymous → login; staff who do not counsel → 403, on every counselling URL and the socket."""
    await add_account(services, "staff-a", ward=WARD_A)
    anonymous: StaffClient = browser_factory()
    for path in ("/staff/counselling", "/staff/counselling/poll", "/staff/counselling/ws"):
        response, _ = await anonymous.get(path)
        assert response.status == 303 and response.headers["Location"].startswith("/staff/login"), path
    response, _ = await anonymous.post("/staff/counselling/act", {"type": "claim", "case": "K7Q2"})
    assert response.status == 303 and response.headers["Location"].startswith("/staff/login")
    staff = await signed_in(browser_factory, "staff-a")
    for path in ("/staff/counselling", "/staff/counselling/poll", "/staff/counselling/ws"):
        assert (await staff.get(path))[0].status == 403, path
    assert (await staff.post("/staff/counselling/duty", {"on": "1"}))[0].status == 403


async def test_a_counsellor_claims_and_talks_through_the_forms(services: Services, server: Any, browser_factory: Any) -> None:
    await add_account(services, "tv-lan", Role.COUNSELLOR, ward=WARD_A)
    await add_account(services, "tv-mai", Role.COUNSELLOR, ward=WARD_B)
    handle = await person_with_case(services)
    lan = await signed_in(browser_factory, "tv-lan")
    response, page = await lan.get("/staff/")
    assert response.status == 303 and response.headers["Location"] == "/staff/counselling", "a counsellor's home"
    response, page = await lan.get("/staff/counselling")
    assert response.status == 200 and f"Người #{handle}" in page
    response, _ = await lan.post("/staff/counselling/act", {"type": "claim", "case": handle})
    assert response.headers["Location"] == f"/staff/counselling?case={handle}&notice=not_on_duty"
    assert (await lan.post("/staff/counselling/duty", {"on": "1"}))[0].status == 303
    response, _ = await lan.post("/staff/counselling/act", {"type": "claim", "case": handle})
    assert response.headers["Location"] == f"/staff/counselling?case={handle}"
    await person_says(services, handle, "<script>alert(1)</script> số em 0912345678")
    _, page = await lan.get(f"/staff/counselling?case={handle}")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    assert "0912345678" not in page and "[đã ẩn số]" in page
    await lan.post("/staff/counselling/act", {"type": "send", "case": handle, "text": "Chào bạn, mình nghe đây."})
    texts = await outbox_texts(services)
    assert any("Một tư vấn viên đã nhận" in text for text in texts)
    assert any(text.startswith("Tư vấn viên: Chào bạn, mình nghe đây.") for text in texts)
    # The other commune's counsellor sees nothing of it, even asking for it by name.
    mai = await signed_in(browser_factory, "tv-mai")
    await mai.post("/staff/counselling/duty", {"on": "1"})
    _, page = await mai.get(f"/staff/counselling?case={handle}")
    assert f"Người #{handle}" not in page and "Chào bạn" not in page and "[đã ẩn số]" not in page
    response, _ = await mai.post("/staff/counselling/act", {"type": "send", "case": handle, "text": "xin chào"},
                                 headers={"Accept": "application/json"})
    assert response.status == 404
    _, body = await mai.get("/staff/counselling/poll")
    assert handle not in body
    # Close with an outcome: the person is told, the address goes from their record.
    response, _ = await lan.post("/staff/counselling/act", {"type": "close", "case": handle, "outcome": "notes"})
    assert "notice=bad_outcome" in response.headers["Location"]
    await lan.post("/staff/counselling/act", {"type": "close", "case": handle, "outcome": "emotional_support"})
    assert any("đã kết thúc trò chuyện" in text for text in await outbox_texts(services))
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        raw = await load_record(session, ring, PSEUDONYM)
        assert raw is not None and PersonRecord.from_bytes(raw).address is None


async def test_the_socket_live_both_ways(services: Services, server: Any, browser_factory: Any) -> None:
    await add_account(services, "tv-lan", Role.COUNSELLOR, ward=WARD_A)
    handle = await person_with_case(services)
    lan = await signed_in(browser_factory, "tv-lan")
    assert (await lan.post("/staff/counselling/duty", {"on": "1"}))[0].status == 303
    await lan.get("/staff/counselling")
    assert lan.token
    url = lan.url(f"/staff/counselling/ws?csrf={lan.token}")
    # No token, a wrong one, or another site's page: refused before any upgrade.
    for bad_url, headers in (
        (lan.url("/staff/counselling/ws"), {"Origin": origin(lan)}),
        (lan.url("/staff/counselling/ws?csrf=wrong"), {"Origin": origin(lan)}),
        (url, {"Origin": "https://evil.example"}),
        (url, {}),
    ):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await lan.session.ws_connect(bad_url, headers=headers)
        assert refused.value.status == 403
    async with lan.session.ws_connect(url, headers={"Origin": origin(lan)}) as ws:
        assert (await receive_until(ws, "duty"))["on"] is True
        waiting = await receive_until(ws, "case", case=handle)
        assert waiting["state"] == "waiting" and waiting["mine"] is False
        await ws.send_json({"type": "claim", "case": handle})
        assert (await receive_until(ws, "done", action="claim"))["case"] == handle
        assert (await receive_until(ws, "case", case=handle))["state"] == "open"
        await person_says(services, handle, "em bị rách bao tối qua", urgent=True)
        services_desk = server.app[STAFF_APP][DESK]
        services_desk.changes.wake()
        got: dict[str, dict[str, Any]] = {}
        while len(got) < 2:  # the case's new urgent flag and the line, in one batch
            event = await ws.receive_json(timeout=10)
            got[event["type"]] = event
        assert got["message"]["from"] == "person" and got["message"]["text"] == "em bị rách bao tối qua"
        assert got["case"]["case"] == handle and got["case"]["urgent"] is True
        await ws.send_json({"type": "send", "case": handle, "text": "<b>Đi ngay hôm nay</b> trong 72 giờ"})
        assert (await receive_until(ws, "done", action="send"))["case"] == handle
        mine = await receive_until(ws, "message", case=handle, **{"from": "counsellor"})
        assert mine["text"] == "<b>Đi ngay hôm nay</b> trong 72 giờ"
        # Bad input: not JSON, an unknown case, an unknown action, a message too long.
        await ws.send_str("{not json")
        assert (await receive_until(ws, "error"))["reason"] == "bad_request"
        await ws.send_json({"type": "send", "case": "ZZZZ", "text": "x"})
        assert (await receive_until(ws, "error"))["reason"] == "not_found"
        await ws.send_json({"type": "delete_everything", "case": handle})
        assert (await receive_until(ws, "error"))["reason"] == "bad_request"
        await ws.send_json({"type": "send", "case": handle, "text": "a" * 2500})
        assert (await receive_until(ws, "error"))["reason"] == "too_long"
        await ws.send_json({"type": "close", "case": handle, "outcome": "safety"})
        assert (await receive_until(ws, "case", case=handle))["state"] == "closed"
    async with lan.session.ws_connect(url, headers={"Origin": origin(lan)}) as ws:
        await receive_until(ws, "duty")
        await ws.send_str("x" * (20 * 1024))
        closing = await ws.receive(timeout=10)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)


async def test_off_duty_gives_cases_back_and_tells_the_person(services: Services, server: Any, browser_factory: Any) -> None:
    await add_account(services, "tv-lan", Role.COUNSELLOR, ward=WARD_A)
    handle = await person_with_case(services)
    lan = await signed_in(browser_factory, "tv-lan")
    assert (await lan.post("/staff/counselling/duty", {"on": "1"}))[0].status == 303
    await lan.post("/staff/counselling/act", {"type": "claim", "case": handle})
    await lan.post("/staff/counselling/duty", {"on": "0"})
    async with services.db.transaction() as session:
        case = await store.open_case_by_handle(session, handle)
        assert case is not None and case.state == "waiting"
    assert any("Bạn vẫn ở trong hàng chờ" in text for text in await outbox_texts(services))


async def test_admins_set_the_hours_people_are_told(services: Services, server: Any, browser_factory: Any) -> None:
    """A province admin sets Monday 08:00-17:00; a person who opens a chat with nobody on duty
    is told the next on-duty time. A mistake saves nothing and names the day."""
    from bot.runtime import Runtime
    from handlers.types import Inbound

    await add_account(services, "so-y-te", Role.ADMIN, province=PROVINCE_A)
    admin = await signed_in(browser_factory, "so-y-te")
    response, page = await admin.post("/staff/counselling/hours", {"province": "12", "start1": "17:00", "end1": "08:00"})
    assert response.status == 400 and "Giờ bắt đầu phải trước giờ kết thúc" in page
    async with services.db.transaction() as session:
        assert await store.hours(session, PROVINCE_A) == []
    response, _ = await admin.post(
        "/staff/counselling/hours", {"province": "12", "start0": "08:00", "end0": "17:00", "unassigned": "on"}
    )
    assert response.status == 303
    _, page = await admin.get("/staff/counselling/hours?province=12")
    assert 'value="08:00"' in page and 'value="17:00"' in page
    async with services.db.transaction() as session:
        assert await store.shows_unassigned(session, PROVINCE_A)
    runtime = Runtime(services)
    for payload in ("c:accept", "s:change"):
        await runtime.answer(Inbound("telegram", "7002", payload=payload))
    await runtime.answer(Inbound("telegram", "7002", text="Bình Lư"))
    replies = await runtime.answer(Inbound("telegram", "7002", payload="h:start"))
    text = "\n".join(reply.text for reply in replies)
    assert "Hiện chưa có tư vấn viên trực. Ca trực tiếp theo: Thứ Hai 08:00" in text


async def test_quick_sends_a_topic_and_the_hotlines(services: Services, server: Any, browser_factory: Any) -> None:
    await add_account(services, "tv-lan", Role.COUNSELLOR, ward=WARD_A)
    handle = await person_with_case(services)
    lan = await signed_in(browser_factory, "tv-lan")
    await lan.post("/staff/counselling/duty", {"on": "1"})
    await lan.post("/staff/counselling/act", {"type": "claim", "case": handle})
    _, page = await lan.get(f"/staff/counselling?case={handle}")
    assert 'value="pep"' in page, "the topics offered"
    response, _ = await lan.post("/staff/counselling/act", {"type": "topic", "case": handle, "topic": "no-such-topic"})
    assert "notice=not_found" in response.headers["Location"]
    await lan.post("/staff/counselling/act", {"type": "topic", "case": handle, "topic": "pep"})
    await lan.post("/staff/counselling/act", {"type": "hotlines", "case": handle})
    texts = await outbox_texts(services)
    pack = services.context.pack
    assert any(pack.topics["pep"].vi.title in text for text in texts)
    assert any(text.startswith("Tư vấn viên gửi bạn các số khẩn cấp") and "113" in text for text in texts)
    _, page = await lan.get(f"/staff/counselling?case={handle}")
    assert pack.topics["pep"].vi.title in page, "the counsellor sees what was sent"


async def test_a_referral_code_through_the_normal_flow(services: Services, server: Any, browser_factory: Any) -> None:
    """The counsellor picks a place; An Tâm issues the code as if the person had asked (counted,
    single use, in their 'my codes') and sends it to them; the counsellor never sees it."""
    import re

    from storage.referral_models import Referral

    await add_account(services, "tv-lan", Role.COUNSELLOR, ward=WARD_A)
    handle = await person_with_case(services)
    lan = await signed_in(browser_factory, "tv-lan")
    await lan.post("/staff/counselling/duty", {"on": "1"})
    await lan.post("/staff/counselling/act", {"type": "claim", "case": handle})
    _, page = await lan.get(f"/staff/counselling?case={handle}")
    choices = re.findall(r'<option value="([a-z0-9_-]+:[a-z_]+)"', page)
    assert choices, "the commune's places that take codes"
    response, _ = await lan.post("/staff/counselling/act", {"type": "code", "case": handle, "choice": choices[0]})
    assert response.headers["Location"] == f"/staff/counselling?case={handle}"
    texts = await outbox_texts(services)
    codes_sent = [m.group(0) for text in texts for m in [re.search(r"\b[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}\b", text)] if m]
    assert len(codes_sent) == 1
    _, page = await lan.get(f"/staff/counselling?case={handle}")
    assert codes_sent[0] not in page and "An Tâm đã gửi mã giới thiệu" in page
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        assert len((await session.scalars(select(Referral))).all()) == 1
        raw = await load_record(session, ring, PSEUDONYM)
        assert raw is not None and len(PersonRecord.from_bytes(raw).state.codes) == 1
    response, _ = await lan.post("/staff/counselling/act", {"type": "code", "case": handle, "choice": "no-such:hiv_test"})
    assert "notice=no_code" in response.headers["Location"]


async def test_the_overview_counts_closed_chats_with_small_cells_hidden(
    services: Services, server: Any, browser_factory: Any, clock: Any
) -> None:
    await add_account(services, "staff-a", ward=WARD_A)
    await add_account(services, "tv-lan", Role.COUNSELLOR, ward=WARD_A)
    async with services.db.transaction() as session:
        account = await get_account_by_name(session, "tv-lan")
    assert account is not None
    who = cases.counsellor_of(account)

    async def one_closed(outcome: str) -> None:
        async with services.db.transaction() as session:
            ring = await services.keys.get(session)
            opened = await cases.open_for_person(
                session, ring, person=CasePerson(PSEUDONYM, "vi"), commune=WARD_A, province=PROVINCE_A,
                channel="telegram", urgent=False, now=clock.now(),
            )
            await cases.go_on_duty(session, who, now=clock.now())
            clock.advance(minutes=4)
            await cases.claim(session, ring, who, opened.case_id, now=clock.now())
            await cases.close(session, ring, who, opened.case_id, outcome, now=clock.now())

    await one_closed("referral")
    staff = await signed_in(browser_factory, "staff-a")
    _, page = await staff.get("/staff/")
    assert "Trò chuyện với tư vấn viên (đã kết thúc)" in page and "Thời gian chờ trung vị chỉ hiện khi" in page
    assert "&lt;5" in page
    for _ in range(4):
        await one_closed("referral")
    _, page = await staff.get("/staff/")
    assert "Thời gian chờ trung vị: 4,0 phút." in page
    assert ">5<" in page
    assert "Trò chuyện theo xã" not in page, "a commune's own page has no per-commune rows"
    await add_account(services, "so-y-te", Role.ADMIN, province=PROVINCE_A)
    admin = await signed_in(browser_factory, "so-y-te")
    _, page = await admin.get("/staff/")
    assert "Trò chuyện theo xã" in page and "Bình Lư" in page


async def test_an_admin_makes_a_staff_member_a_counsellor(services: Services, server: Any, browser_factory: Any) -> None:
    await add_account(services, "so-y-te", Role.ADMIN, province=PROVINCE_A)
    staff_id = await add_account(services, "staff-a", ward=WARD_A)
    await add_account(services, "tv-lan", Role.COUNSELLOR, ward=WARD_A)
    admin = await signed_in(browser_factory, "so-y-te")
    _, page = await admin.get("/staff/accounts")
    assert "Tư vấn viên" in page, "the counsellor role is named in the list"
    staff = await signed_in(browser_factory, "staff-a")
    assert (await staff.get("/staff/counselling"))[0].status == 403
    response, _ = await admin.post(f"/staff/accounts/{staff_id}/counsels", {"counsels": "on"})
    assert response.headers["Location"] == f"/staff/accounts/{staff_id}?done=counsels"
    response, page = await staff.get("/staff/counselling")
    assert response.status == 200, "staff made counsellors counsel, and keep their own pages"
    assert (await staff.get("/staff/"))[0].status == 200
    response, _ = await admin.post(f"/staff/accounts/{staff_id}/counsels", {"counsels": "off"})
    assert (await staff.get("/staff/counselling"))[0].status == 403
