"""The counsellor chat from the person's side, through the real runtime and engine (Telegram
addresses), with a counsellor acting through the desk: notice, opening, the wait, masking,
a safety message during the chat, the counsellor's answer in the outbox, and every way a chat
ends (the person, quick exit, erasure, the counsellor)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from bot.bootstrap import Services
from bot.counselling import Desk
from bot.record import PersonRecord
from bot.runtime import Runtime
from counselling import cases
from handlers.types import Inbound
from referrals.counters import daily_sums
from storage import counselling as store
from storage import outbox
from storage.counselling import Case, CaseState
from storage.outbox import OutboxMessage
from storage.persons import load_record
from storage.staff import Role, get_account
from tests.staff_fixtures import WARD_A, add_account

USER = "7001"


def said(replies: list[object]) -> str:
    return "\n".join(reply.text for reply in replies)  # type: ignore[attr-defined]


def payloads(replies: list[object]) -> list[str]:
    return [button.payload for reply in replies for button in reply.buttons]  # type: ignore[attr-defined]


async def person(runtime: Runtime, *, text: str | None = None, payload: str | None = None, media: str | None = None) -> list[object]:
    return list(await runtime.answer(Inbound("telegram", USER, text=text, payload=payload, media=media)))


async def record_of(services: Services) -> PersonRecord | None:
    pseudonym = services.secrets.pseudonym("telegram", USER)
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        raw = await load_record(session, ring, pseudonym)
        return PersonRecord.from_bytes(raw) if raw is not None else None


async def only_case(services: Services) -> Case:
    async with services.db.transaction() as session:
        found = (await session.scalars(select(Case))).all()
        assert len(found) == 1
        return found[0]


async def transcript(services: Services, case_id: int) -> list[tuple[str, str]]:
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        return [(line.sender.value, line.text) for line in await store.transcript(session, ring, case_id)]


async def outbox_texts(services: Services) -> list[tuple[str, str]]:
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        rows = (await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
        found: list[tuple[str, str]] = []
        for row in rows:
            opened = json.loads(ring.open(row.sealed, outbox.outbox_context(row.dedupe)))
            found.extend((opened["a"], reply["t"]) for reply in opened["r"])
        return found


async def on_duty_counsellor(services: Services) -> cases.Counsellor:
    account_id = await add_account(services, "tv-lan", Role.COUNSELLOR, ward=WARD_A)
    async with services.db.transaction() as session:
        account = await get_account(session, account_id)
        assert account is not None
        who = cases.counsellor_of(account)
        await cases.go_on_duty(session, who, now=services.clock.now())
    return who


async def open_chat(runtime: Runtime, services: Services, *, new: bool = True) -> list[object]:
    notice = await person(runtime, payload="h")
    assert "Tư vấn viên chỉ thấy" in said(notice) and "113" in said(notice), "what the counsellor sees, and the hotlines"
    if new:
        assert await record_of(services) is None, "nothing stored before the person accepts"
        assert "lưu một hồ sơ nhỏ" in said(notice), "accepting gives the general consent: said so"
    assert "h:start" in payloads(notice)
    return await person(runtime, payload="h:start")


async def test_a_whole_chat(services: Services) -> None:
    runtime, desk = Runtime(services), Desk(services)
    who = await on_duty_counsellor(services)
    await person(runtime, payload="c:accept")
    await person(runtime, payload="s:change")
    await person(runtime, text="Bình Lư")
    opened = await open_chat(runtime, services, new=False)
    assert "Đã mở cuộc trò chuyện" in said(opened) and "Một tư vấn viên đang trực sẽ trả lời bạn sớm" in said(opened)
    assert "h:end" in payloads(opened) and "x" in payloads(opened)
    record = await record_of(services)
    assert record is not None and record.address == USER and record.state.case is not None
    case = await only_case(services)
    assert case.state == CaseState.WAITING and case.commune == WARD_A

    first = await person(runtime, text="chào chị, số em 0912345678 nhé")
    assert "đã được ẩn" in said(first), "told once why"
    assert await person(runtime, text="em muốn hỏi về PrEP") == [], "then the counsellor answers, not the bot"
    assert await person(runtime, text="zalo em 0987654321") == [], "told only once"
    urgent = await person(runtime, text="hôm qua bị rách bao cao su")
    assert "72" in said(urgent), "a safety message still gets the bot's answer at once"
    assert "h:end" in payloads(urgent)
    photo = await person(runtime, media="photo")
    assert "Chỉ tin nhắn chữ" in said(photo)
    lines = await transcript(services, case.id)
    assert lines[0] == ("person", "chào chị, số em [đã ẩn số] nhé")
    assert ("person", "zalo em [đã ẩn số]") in lines
    assert lines[-1][0] == "bot" and "pep" in lines[-1][1]
    assert all("0912345678" not in text and "0987654321" not in text for _, text in lines)
    assert (await only_case(services)).urgent

    await desk.claim(who, case.handle)
    assert await desk.send(who, case.handle, "Chị đây. Em đi ngay hôm nay nhé.")
    sent = await outbox_texts(services)
    assert [address for address, _ in sent] == [USER, USER]
    assert "Một tư vấn viên đã nhận" in sent[0][1] and sent[1][1] == "Tư vấn viên: Chị đây. Em đi ngay hôm nay nhé."

    await desk.close(who, case.handle, "referral")
    async with services.db.transaction() as session:
        sums = await daily_sums(
            session, start=dt.date(2000, 1, 1), end=dt.date(2100, 1, 1),
            metrics=["counselled:m", "counselled:h", "counselled:y"], by=("metric", "commune"),
        )
    assert {(str(k[0]), int(str(k[1]))): v for k, v in sums.items()} == {
        ("counselled:m", WARD_A): 1, ("counselled:h", WARD_A): 1, ("counselled:y", WARD_A): 1,
    }, "a case closed with an outcome counts the person once per period, in the case's commune"
    record = await record_of(services)
    assert record is not None and record.address is None and record.state.case is None
    assert await transcript(services, case.id) == []
    after = await person(runtime, text="cảm ơn chị")
    assert after and "chưa được chuyển" not in said(after), "the bot answers as usual again"
    assert len(await outbox_texts(services)) == 3 and "đã kết thúc" in (await outbox_texts(services))[2][1]


@pytest.mark.parametrize("ending", ["end", "quick_exit", "erase"])
async def test_every_way_the_person_ends_it(services: Services, ending: str) -> None:
    runtime = Runtime(services)
    await open_chat(runtime, services)
    await person(runtime, text="em đang sợ")
    case = await only_case(services)
    if ending == "end":
        replies = await person(runtime, payload="h:end")
        assert "Đã kết thúc trò chuyện" in said(replies)
    elif ending == "quick_exit":
        await person(runtime, payload="x")
    else:
        await person(runtime, payload="p:erase")
        await person(runtime, payload="p:erase:yes")
    closed = await only_case(services)
    assert closed.id == case.id and closed.state == CaseState.CLOSED and closed.person is None
    assert await transcript(services, case.id) == []
    record = await record_of(services)
    if ending == "erase":
        assert record is None
    else:
        assert record is not None and record.address is None and record.state.case is None


async def test_nobody_on_duty_and_asking_in_words(services: Services) -> None:
    runtime = Runtime(services)
    notice = await person(runtime, text="cho em nói chuyện với tư vấn viên được không")
    assert "Tư vấn viên chỉ thấy" in said(notice)
    opened = await person(runtime, payload="h:start")
    assert "Hiện chưa có tư vấn viên trực" in said(opened) and "113" in said(opened)
    again = await person(runtime, payload="h")
    assert "Bạn đang có một cuộc trò chuyện" in said(again)


async def test_a_message_after_the_case_expired(services: Services, clock: object) -> None:
    runtime, desk = Runtime(services), Desk(services)
    await open_chat(runtime, services)
    clock.advance(hours=25)  # type: ignore[attr-defined]
    assert await desk.expire() == 1
    record = await record_of(services)
    assert record is not None and record.state.case is None and record.address is None
    assert any("tự kết thúc" in text for _, text in await outbox_texts(services)), "the person is told"
    replies = await person(runtime, text="chị ơi còn đó không")
    assert replies and "chưa được chuyển" not in said(replies)


async def test_a_typed_yes_still_confirms_erasure_during_a_chat(services: Services) -> None:
    runtime = Runtime(services)
    await open_chat(runtime, services)
    await person(runtime, payload="p:erase")
    await person(runtime, text="có")
    assert await record_of(services) is None
    assert (await only_case(services)).state == CaseState.CLOSED


async def test_antam_purge_closes_chats_past_their_age(services: Services, clock: object) -> None:
    import io

    from bot.operations import _purge

    runtime = Runtime(services)
    await open_chat(runtime, services)
    await person(runtime, text="chị ơi")
    out = io.StringIO()
    await _purge(services, out)
    assert "counsellor chat" not in out.getvalue(), "a chat with a recent message stays open"
    clock.advance(hours=24, minutes=1)  # type: ignore[attr-defined]
    await _purge(services, out)
    assert "Closed 1 counsellor chat(s) with no message for 24 hours" in out.getvalue()
    assert (await only_case(services)).state == CaseState.CLOSED
