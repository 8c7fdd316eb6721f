"""The Zalo OA channel end to end: signed webhook events in, messages out to a fake Zalo server.

Events are posted to the real ZaloChannel route on an aiohttp server on 127.0.0.1, handled in
the background by the real runtime and database, and the replies are checked at the fake Zalo
Open API (also on 127.0.0.1). ``channel.drain()`` waits for the background work: no sleeps.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from bot.bootstrap import Services, open_services
from bot.channels.registry import ZALO
from bot.channels.zalo import (
    WEBHOOK_PATH,
    ZaloChannel,
    ZaloTokens,
    app_secret_of,
    outgoing,
    to_inbound,
)
from bot.clock import FixedClock
from bot.config import ConfigError, Settings
from bot.logs import quiet_libraries
from bot.record import PersonRecord
from bot.runtime import Runtime
from handlers.render import RenderedButton, RenderedReply
from handlers.types import Location
from storage.channel_secrets import (
    ChannelToken,
    Tokens,
    channel_tokens_using_key,
    claim_tokens,
    reencrypt_channel_tokens,
    store_tokens,
)
from storage.keys import rotate_keys
from storage.models import ProcessedUpdate
from storage.persons import load_record
from tests.fakes.zalo_api import OUTSIDE_WINDOW, QUOTA, FakeZaloAPI, invalid_field
from tests.support.zalo import (
    ACCESS,
    APP_ID,
    APP_SECRET,
    OA_SECRET,
    OTHER,
    REFRESH,
    USER,
    Worker,
    all_buttons,
    start_worker,
    stop_worker,
    texts,
    zalo_app,
    zalo_settings,
)


@pytest.fixture
async def fake(clock: FixedClock) -> AsyncIterator[FakeZaloAPI]:
    api = FakeZaloAPI(
        app_id=APP_ID,
        oa_secret_key=OA_SECRET,
        app_secret_key=APP_SECRET,
        access_token=ACCESS,
        refresh_token=REFRESH,
        clock=lambda: clock.now().timestamp(),
    )
    async with api:
        yield api


@pytest.fixture
async def bot(settings: Settings, fake: FakeZaloAPI, clock: FixedClock) -> AsyncIterator[Worker]:
    worker = await start_worker(settings, fake, clock)
    try:
        yield worker
    finally:
        await stop_worker(worker)


async def stored(services: Services, user: str) -> PersonRecord | None:
    pseudonym = services.secrets.pseudonym("zalo", user)
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        raw = await load_record(session, ring, pseudonym, lock=False)
    return PersonRecord.from_bytes(raw) if raw is not None else None


async def stored_tokens(services: Services) -> Tokens | None:
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        return await claim_tokens(session, ring, "zalo", None, now=services.clock.now())


async def raw_token_rows(services: Services) -> list[bytes]:
    async with services.db.transaction() as session:
        return [bytes(row) for row in (await session.scalars(select(ChannelToken.sealed))).all()]


def data_files(services: Services) -> list[Path]:
    data_dir = services.settings.data_dir
    return [p for p in data_dir.rglob("*") if p.is_file()] if data_dir.exists() else []


# ---- the webhook's door ------------------------------------------------------------------------


async def test_signed_event_is_answered_with_buttons(bot: Worker, fake: FakeZaloAPI) -> None:
    """A correctly signed follow event gets the welcome, its choices as oa.query.hide buttons."""
    assert await bot.post(fake.follow(USER)) == 200
    (welcome,) = fake.sent_to(USER)
    assert "quyền riêng tư" in welcome["text"]
    attachment = welcome["attachment"]
    assert attachment["type"] == "template"
    buttons = attachment["payload"]["buttons"]
    assert [b["payload"] for b in buttons] == ["#c:accept", "#c:decline", "#c:more", "#x"]
    assert {b["type"] for b in buttons} == {"oa.query.hide"}
    assert buttons[0]["title"] == "Đồng ý"
    (call,) = fake.calls_to("send")
    assert call.token == ACCESS and call.body["recipient"] == {"user_id": USER}


async def test_bad_signatures_are_refused_before_anything(bot: Worker, fake: FakeZaloAPI) -> None:
    """A wrong, missing or stale signature gets 401 and nothing is handled, stored or sent."""
    event = fake.text(USER, "menu")
    assert await bot.post(event, secret="not-the-secret") == 401
    body, headers = fake.signed(event)
    response = await bot.client.post(WEBHOOK_PATH, data=body, headers={"Content-Type": "application/json"})
    assert response.status == 401
    tampered = body.replace(b"menu", b"xoa!")
    response = await bot.client.post(WEBHOOK_PATH, data=tampered, headers=headers)
    assert response.status == 401
    response = await bot.client.post(WEBHOOK_PATH, data=body, headers={**headers, "X-ZEvent-Signature": "mac="})
    assert response.status == 401
    await bot.channel.drain()
    assert fake.calls == [], "no message sent and no token touched"
    async with bot.services.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(ProcessedUpdate)) == 0


def sign(body: bytes, event: dict[str, Any]) -> str:
    """Zalo's signature of a raw body with the event's app_id and timestamp (the body need not parse)."""
    text = event["app_id"].encode() + body + event["timestamp"].encode() + OA_SECRET.encode()
    return "mac=" + hashlib.sha256(text).hexdigest()


async def test_malformed_bodies_and_other_apps(bot: Worker, fake: FakeZaloAPI) -> None:
    """Unverifiable bodies get 401 whatever their shape; a signed one out of bounds 400; another app 403."""
    headers = {"X-ZEvent-Signature": "mac=" + "0" * 64}
    for body in (b"{not json", b"[]", b"\xff\xfe", b"", b"[" * 60000, b'{"a":' * 12000, b"9" * 5000):
        response = await bot.client.post(WEBHOOK_PATH, data=body, headers=headers)
        assert response.status == 401, body[:20]
    response = await bot.client.post(WEBHOOK_PATH, data=b"[" * 70000, headers=headers)
    assert response.status == 413, "beyond 64 KB: refused unread"
    response = await bot.client.post(WEBHOOK_PATH, data=b'{"event_name": "follow"}', headers=headers)
    assert response.status == 401, "without app_id and timestamp nothing can be verified"
    event = fake.text(USER, "menu")
    for extreme in ("1e400", "NaN", "9" * 400, "[" * 20 + "]" * 20 + "]"):
        # Correctly signed, but not JSON this service accepts: 400 (Zalo never sends such a body).
        body = json.dumps(event).encode()[:-1] + b', "x": ' + extreme.encode() + b"}"
        response = await bot.client.post(WEBHOOK_PATH, data=body, headers={"X-ZEvent-Signature": sign(body, event)})
        assert response.status == 400, extreme[:10]
    nested = json.dumps(event).encode()[:-1] + b', "x": ' + b"[" * 40 + b"]" * 40 + b"}"
    response = await bot.client.post(WEBHOOK_PATH, data=nested, headers={"X-ZEvent-Signature": sign(nested, event)})
    assert response.status == 400, "signed, but nested deeper than 32 levels"
    duplicated = json.dumps(event).encode()[:-1] + b', "app_id": "999"}'
    response = await bot.client.post(WEBHOOK_PATH, data=duplicated, headers={"X-ZEvent-Signature": "mac=" + "0" * 64})
    assert response.status == 401
    other_app = {**fake.text(USER, "menu"), "app_id": "999000111"}
    assert await bot.post(other_app) == 403
    await bot.channel.drain()
    assert fake.sent_to(USER) == []


async def test_huge_numbers_in_a_signed_location_are_refused_or_ignored(bot: Worker, fake: FakeZaloAPI) -> None:
    """A latitude of 400 digits, 1e400 or a boolean never crashes the handler: no location is taken."""
    await bot.post(fake.follow(USER))
    await bot.press(USER, "c:accept")
    for latitude in ("9" * 400, "1e400", "-inf", True, ["21"]):
        event = fake.location(USER, 21.0, 105.8)
        event["message"]["attachments"][0]["payload"]["coordinates"]["latitude"] = latitude
        before = len(fake.sent_to(USER))
        assert await bot.post(event) == 200
        assert fake.sent_to(USER)[before:], "an answer, not a crash"
        assert "tọa độ" not in texts(fake.sent_to(USER)[before:]), latitude
    event = fake.location(USER, 21.0, 105.8)
    event["message"]["attachments"][0]["payload"]["coordinates"]["latitude"] = 10**400
    assert await bot.post(event) == 400, "an integer of 400 digits is not JSON this service reads"


async def test_events_outside_the_freshness_window_are_not_handled(
    bot: Worker, fake: FakeZaloAPI, clock: FixedClock
) -> None:
    """A correctly signed event older (or newer) than ZALO_EVENT_MAX_AGE gets 200 and no answer."""
    assert bot.services.settings.zalo_event_max_age == 3600
    now_ms = int(clock.now().timestamp() * 1000)
    for offset in (-3601, 3601, -86400 * 30):
        event = {**fake.text(USER, "menu"), "timestamp": str(now_ms + offset * 1000)}
        assert await bot.post(event) == 200
    assert fake.sent_to(USER) == []
    async with bot.services.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(ProcessedUpdate)) == 0
    recent = {**fake.text(USER, "menu"), "timestamp": str(now_ms - 3500 * 1000)}
    assert await bot.post(recent) == 200
    assert len(fake.sent_to(USER)) == 2, "within the window: answered (the menu in two messages)"
    assert await bot.post(recent) == 200
    assert len(fake.sent_to(USER)) == 2, "a redelivery inside the window is deduplicated"


async def test_an_event_arriving_in_pieces_is_read_whole(bot: Worker, fake: FakeZaloAPI) -> None:
    """A signed event whose body comes in several segments (chunked, with pauses) is verified and answered."""
    body, headers = fake.signed(fake.text(USER, "menu " + "x" * 3000))

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 500):
            yield body[start : start + 500]
            await asyncio.sleep(0.01)

    response = await bot.client.post(WEBHOOK_PATH, data=pieces(), headers=headers)
    assert response.status == 200
    await bot.channel.drain()
    assert fake.sent_to(USER), "answered"


async def test_replayed_event_is_answered_once(bot: Worker, fake: FakeZaloAPI) -> None:
    """Zalo delivering the same message twice (same msg_id) gets one answer."""
    event = fake.text(USER, "menu")
    assert await bot.post(event) == 200
    assert await bot.post(event) == 200
    assert len(fake.sent_to(USER)) == 2, "one menu: text with 4 buttons, then 4 more buttons"
    follow = fake.follow(OTHER)
    await bot.post(follow)
    await bot.post(follow)
    assert len(fake.sent_to(OTHER)) == 1, "events without msg_id are deduplicated too"


# ---- conversations -----------------------------------------------------------------------------


async def test_whole_conversation(bot: Worker, fake: FakeZaloAPI) -> None:
    """Follow, consent, menu, a commune typed, a location, then erasure through the confirm button."""
    await bot.post(fake.follow(USER))
    assert await stored(bot.services, USER) is None, "nothing is stored before consent"
    menu = await bot.press(USER, "c:accept")
    assert [len(FakeZaloAPI.buttons(m)) for m in menu] == [4, 4], "eight choices spread over two messages"
    assert "Cảm ơn bạn" in menu[0]["text"] and menu[1]["text"] == "…"
    assert {"#i", "#s", "#e", "#p", "#x"} <= set(all_buttons(menu))
    assert await stored(bot.services, USER) is not None
    await bot.press(USER, "s")
    listing = await bot.say(USER, "binh lu")
    assert "Trạm Y tế xã Bình Lư" in texts(listing)
    before = len(fake.sent_to(USER))
    assert await bot.post(fake.location(USER, 22.39, 103.46)) == 200
    assert "tọa độ" in texts(fake.sent_to(USER)[before:])
    confirm = await bot.say(USER, "xóa dữ liệu")
    assert "#p:erase:yes" in all_buttons(confirm)
    erased = await bot.press(USER, "p:erase:yes")
    assert erased[0]["text"].startswith("Đã xóa toàn bộ dữ liệu")
    assert await stored(bot.services, USER) is None
    for message in fake.sent_to(USER):
        assert len(message["text"]) <= ZALO.capabilities.max_text and len(FakeZaloAPI.buttons(message)) <= 5


async def test_typed_hash_words_and_media(bot: Worker, fake: FakeZaloAPI) -> None:
    """"#m" typed by hand is the menu button; images and stickers get the text-only note."""
    menu = await bot.say(USER, "#m")
    assert "#s" in all_buttons(menu) and "chưa hiểu" not in texts(menu)
    for event in (fake.image(USER), fake.sticker(USER)):
        before = len(fake.sent_to(USER))
        assert await bot.post(event) == 200
        assert "chỉ đọc được tin nhắn chữ" in fake.sent_to(USER)[before]["text"]


async def test_the_oas_own_events_get_no_reply(bot: Worker, fake: FakeZaloAPI) -> None:
    """The OA's own messages, delivery and seen receipts, and unfollow are acknowledged, never answered."""
    for event in (
        fake.oa_send_text(USER, "Chào bạn, đây là tin của quản trị viên"),
        fake.user_seen_message(USER),
        fake.user_received_message(USER),
        fake.unfollow(USER),
    ):
        assert await bot.post(event) == 200
    assert fake.calls == []
    async with bot.services.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(ProcessedUpdate)) == 0


async def test_quick_exit_leaves_one_neutral_message(bot: Worker, fake: FakeZaloAPI) -> None:
    """"Thoát nhanh" gets one message without buttons, starting with the neutral line."""
    await bot.post(fake.follow(USER))
    (message,) = await bot.press(USER, "x")
    assert message["text"].startswith("Đã xong.") and "attachment" not in message
    (typed,) = await bot.say(USER, "thoát nhanh")
    assert typed["text"].startswith("Đã xong.")


# ---- tokens ------------------------------------------------------------------------------------


async def test_refused_token_is_refreshed_and_stored_sealed(bot: Worker, fake: FakeZaloAPI) -> None:
    """On -216 the token is refreshed once, the message retried, and the new pair stored sealed."""
    await bot.say(USER, "menu")
    assert fake.calls_to("oauth") == [], "the configured access token is used until Zalo refuses it"
    fake.revoke_access_token()
    answer = await bot.say(USER, "menu")
    assert answer, "the message was sent after the refresh"
    (refresh,) = fake.calls_to("oauth")
    assert refresh.body == {"refresh_token": REFRESH, "app_id": APP_ID, "grant_type": "refresh_token"}
    assert refresh.token == APP_SECRET, "the secret_key header: the app secret, not the OA secret key"
    new_access, new_refresh = fake.issued[0]
    assert fake.calls_to("send")[-1].token == new_access
    tokens = await stored_tokens(bot.services)
    assert tokens is not None and (tokens.access_token, tokens.refresh_token) == (new_access, new_refresh)
    assert tokens.expires_at == bot.services.clock.now() + dt.timedelta(seconds=90_000)
    sealed = b"".join(await raw_token_rows(bot.services))
    for secret in (ACCESS, REFRESH, new_access, new_refresh):
        assert secret.encode() not in sealed
        for path in data_files(bot.services):
            assert secret.encode() not in path.read_bytes(), path.name
    fake.revoke_access_token()
    await bot.say(USER, "menu")
    second = fake.calls_to("oauth")[1]
    assert second.body["refresh_token"] == new_refresh, "the newest refresh token, never the spent one"
    assert fake.reused_refresh_tokens == []


async def test_token_is_refreshed_before_it_expires(bot: Worker, fake: FakeZaloAPI, clock: FixedClock) -> None:
    """Less than ten minutes before expiry the token is refreshed before sending, with no -216."""
    fake.revoke_access_token()
    await bot.say(USER, "menu")
    assert fake.token_errors == 1 and len(fake.calls_to("oauth")) == 1
    clock.advance(hours=24, minutes=40)
    await bot.say(USER, "menu")
    assert len(fake.calls_to("oauth")) == 1, "20 minutes left: no refresh yet"
    clock.advance(minutes=15)
    answer = await bot.say(USER, "menu")
    assert answer and len(fake.calls_to("oauth")) == 2 and fake.token_errors == 1
    assert fake.calls_to("oauth")[1].body["refresh_token"] == fake.issued[0][1]


async def test_two_workers_spend_a_refresh_token_once(
    bot: Worker, fake: FakeZaloAPI, settings: Settings, clock: FixedClock
) -> None:
    """Two workers refused the same token at once: one refreshes, the other picks up its result."""
    other = await start_worker(settings, fake, clock)
    try:
        await bot.say(USER, "menu")
        await other.say(OTHER, "menu")
        fake.revoke_access_token()
        before = len(fake.sent)
        results = await asyncio.gather(
            bot.post(fake.text(USER, "menu")), other.post(fake.text(OTHER, "menu"))
        )
        assert results == [200, 200]
        assert len(fake.calls_to("oauth")) == 1 and fake.reused_refresh_tokens == []
        assert len(fake.sent) - before == 4, "both menus delivered"
        delivered = [c for c in fake.calls_to("send") if c.answer is not None and c.answer["error"] == 0][-4:]
        assert {c.token for c in delivered} == {fake.issued[0][0]}
    finally:
        await stop_worker(other)


async def test_new_configured_token_replaces_the_stored_chain(
    settings: Settings, fake: FakeZaloAPI, clock: FixedClock
) -> None:
    """An operator who re-authorised the app sets a new refresh token; an old one never rolls back."""
    worker = await start_worker(settings, fake, clock)
    try:
        fake.revoke_access_token()
        await worker.say(USER, "menu")
    finally:
        await stop_worker(worker)
    chained = fake.issued[0][1]
    fake.refresh_token = "zalo-refresh-OPERATOR-new"
    fake.revoke_access_token()
    services = await open_services(
        zalo_settings(settings, fake).model_copy(
            update={"zalo_refresh_token": SecretStr("zalo-refresh-OPERATOR-new"), "zalo_access_token": None}
        ),
        clock=clock,
        warn=lambda _m: None,
    )
    try:
        channel = ZaloChannel(Runtime(services), services.settings, oauth_base_url=fake.base_url)
        assert await channel.tokens.get() == fake.issued[1][0]
        assert fake.calls_to("oauth")[-1].body["refresh_token"] == "zalo-refresh-OPERATOR-new"
        stale = ZaloChannel(Runtime(services), zalo_settings(settings, fake), oauth_base_url=fake.base_url)
        assert await stale.tokens.get() == fake.issued[1][0], "a worker still configured with the old token"
        assert chained not in fake.spent_refresh_tokens, "the replaced chain is dropped, not spent"
        assert fake.reused_refresh_tokens == []
        await channel.stop()
        await stale.stop()
    finally:
        await services.close()


async def test_tokens_follow_a_key_rotation(services: Services) -> None:
    """Key rotation seals the tokens again under the new key; the old key goes only once unused."""
    from storage.keys import RETIRED_KEY_GRACE, prune_retired_keys

    now = services.clock.now()
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        await claim_tokens(session, ring, "zalo", Tokens("a-token", "r-token", None), now=now)
        old_key = ring.active_id
    report = await rotate_keys(services.db, services.secrets, now=now)
    async with services.db.transaction() as session:
        assert await channel_tokens_using_key(session, old_key) == 0, "rotation re-sealed the tokens"
        assert await channel_tokens_using_key(session, report.new_key_id) == 1
    deleted, _ = await prune_retired_keys(services.db, services.secrets, now=now + RETIRED_KEY_GRACE)
    assert deleted == [old_key]
    async with services.db.transaction() as session:
        ring = await services.keys.get(session, refresh=True)
        assert await reencrypt_channel_tokens(session, ring) == 0, "nothing left under an old key"
        tokens = await claim_tokens(session, ring, "zalo", None, now=now)
        assert tokens is not None and tokens.refresh_token == "r-token"
        await store_tokens(session, ring, "zalo", Tokens("b-token", "s-token", now), now=now)
    assert repr(tokens) == "Tokens(expires_at=None)", "a repr never shows a token"


async def test_unreadable_tokens_start_again_from_configuration(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    """Stored tokens that no longer open give way to the configured ones, with an error logged."""
    now = services.clock.now()
    async with services.db.transaction() as session:
        ring = await services.keys.get(session)
        session.add(ChannelToken(channel="zalo", sealed=ring.seal(b"{}", b"another row"), updated_at=now))

    async def no_oauth(_refresh_token: str) -> Tokens | None:
        raise AssertionError("an access token of unknown age is used until Zalo refuses it")

    tokens = ZaloTokens(services, Tokens("configured-access", "configured-refresh"), no_oauth)
    assert await tokens.get() == "configured-access"
    assert "stored tokens cannot be opened" in caplog.text
    stored = await stored_tokens(services)
    assert stored is not None and stored.refresh_token == "configured-refresh"


# ---- errors ------------------------------------------------------------------------------------


async def test_api_errors_are_logged_and_survived(
    bot: Worker, fake: FakeZaloAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """5xx, 4xx, quota, outside-window and OAuth failures are logged by code; later events still work."""
    caplog.set_level(logging.INFO, logger="antam.zalo")
    fake.fail_next(status=500)
    assert await bot.say(USER, "menu"), "one 500 is retried"
    fake.fail_next(status=503, times=3)
    assert await bot.say(USER, "menu") == []
    assert "zalo unreachable after 3 attempts" in caplog.text
    fake.fail_next(status=400)
    assert await bot.say(USER, "menu") == []
    assert "HTTP 400" in caplog.text
    fake.fail_next(error=QUOTA)
    assert await bot.say(USER, "menu") == []
    assert "error -32" in caplog.text
    fake.fail_next(error=OUTSIDE_WINDOW)
    assert await bot.say(USER, "menu") == []
    assert "error -230" in caplog.text
    fake.revoke_access_token()
    fake.fail_next("oauth", status=500)
    assert await bot.say(USER, "menu") == []
    assert "zalo refused to refresh the access token (HTTP 500" in caplog.text
    assert REFRESH not in fake.spent_refresh_tokens, "a failed refresh spends nothing"
    assert await bot.say(USER, "menu"), "everything works again"
    assert len(fake.calls_to("oauth")) == 2 and fake.reused_refresh_tokens == []


# ---- translation, unit by unit ----------------------------------------------------------------


def test_refresh_tokens_without_the_app_secret_stop_the_start(settings: Settings, fake: FakeZaloAPI) -> None:
    """ZALO_REFRESH_TOKEN without ZALO_APP_SECRET_KEY is refused at start, naming the variable.

    The OA secret key is another key: falling back to it would only fail at the first refresh.
    """
    configured = zalo_settings(settings, fake).model_copy(update={"zalo_app_secret_key": None})
    with pytest.raises(ConfigError, match="ZALO_APP_SECRET_KEY"):
        app_secret_of(configured)
    without_refresh = configured.model_copy(update={"zalo_refresh_token": None})
    assert app_secret_of(without_refresh) == ""


async def test_cli_run_refuses_refresh_tokens_without_the_app_secret(tmp_path: Path) -> None:
    """`antam run` with ZALO_REFRESH_TOKEN but no ZALO_APP_SECRET_KEY exits non-zero, saying which variable."""
    env = {
        "ANTAM_DATA_DIR": str(tmp_path),
        "ANTAM_HTTP_PORT": "9",  # never listened on: the check comes first
        "ZALO_APP_ID": APP_ID,
        "ZALO_OA_SECRET_KEY": OA_SECRET,
        "ZALO_REFRESH_TOKEN": REFRESH,
        "PATH": os.environ.get("PATH", ""),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode != 0 and b"ZALO_APP_SECRET_KEY" in err


def test_long_replies_and_many_buttons_fit_zalos_limits(services: Services) -> None:
    """Long texts are cut under 2,000 characters and buttons spread five at most per message."""
    text = "\n\n".join(f"Đoạn {i}: " + "chữ " * 150 for i in range(8))
    buttons = tuple(RenderedButton(f"Lựa chọn {i} " + "x" * (120 if i == 0 else 0), f"w:{i}") for i in range(12))
    fitted = services.renderer.fit([RenderedReply(text, buttons)], ZALO.capabilities)
    messages = [outgoing(reply) for reply in fitted]
    assert [len(FakeZaloAPI.buttons(m)) for m in messages if "attachment" in m] == [4, 4, 4]
    assert " ".join(" ".join(m["text"] for m in messages if m["text"] != "…").split()) == " ".join(text.split())
    for message in messages:
        assert invalid_field({"recipient": {"user_id": USER}, "message": message}) is None
    assert len(messages[2]["attachment"]["payload"]["buttons"][0]["title"]) == 100


def test_events_become_inbounds() -> None:
    """Each event kind becomes the neutral Inbound the engine expects, or nothing."""
    base = {"app_id": APP_ID, "timestamp": "1772420400000", "sender": {"id": USER}}
    text = to_inbound({**base, "event_name": "user_send_text", "message": {"msg_id": "m1", "text": "#en|t:prep"}})
    assert text is not None and text.payload == "en|t:prep" and text.update_id == "m1" and text.text is None
    spaced = to_inbound({**base, "event_name": "user_send_text", "message": {"msg_id": "m6", "text": "# xét nghiệm"}})
    assert spaced is not None and spaced.text == "# xét nghiệm" and spaced.payload is None, "with a space it is text"
    place = {"latitude": "10.5", "longitude": 106}
    bare = to_inbound({**base, "event_name": "user_send_location", "message": {"msg_id": "m2", "location": place}})
    assert bare is not None and bare.location == Location(10.5, 106.0)
    broken = to_inbound({**base, "event_name": "user_send_location", "message": {"msg_id": "m3", "attachments": "x"}})
    assert broken is not None and broken.media == "location"
    for odd in (5, True, {"type": "location"}, [5, None, {"type": "location", "payload": 7}]):
        found = to_inbound({**base, "event_name": "user_send_location", "message": {"msg_id": "m7", "attachments": odd}})
        assert found is not None and found.media == "location", odd
    odd_id = to_inbound({**base, "event_name": "user_send_text", "message": {"msg_id": "m\ud800", "text": "hi"}})
    assert odd_id is not None and odd_id.update_id == f"user_send_text:1772420400000:{USER}"
    for user in ("x" * 500, "", ["1"], 1.5):
        assert to_inbound({**base, "sender": {"id": user}, "event_name": "user_send_text", "message": {"text": "hi"}}) is None
    card = to_inbound({**base, "event_name": "user_send_business_card", "message": {"msg_id": "m4"}})
    assert card is not None and card.media == "contact"
    follow = to_inbound({**base, "event_name": "follow"})
    assert follow is not None and follow.text == "/start" and follow.update_id == f"follow:1772420400000:{USER}"
    for ignored in ("unfollow", "oa_send_text", "user_seen_message", "user_received_message", "anonymous_send_text"):
        assert to_inbound({**base, "event_name": ignored, "message": {"msg_id": "m5", "text": "hi"}}) is None
    assert to_inbound({"event_name": "user_send_text", "message": {"text": "no sender"}}) is None


async def test_fake_refuses_what_zalo_refuses(fake: FakeZaloAPI) -> None:
    """The fake answers -201 to shapes Zalo refuses and an error to a spent refresh token."""
    def template(buttons: list[dict[str, Any]]) -> dict[str, Any]:
        return {"text": "hi", "attachment": {"type": "template", "payload": {"buttons": buttons}}}

    button = {"title": "A", "type": "oa.query.hide", "payload": "#a"}
    phone = {"title": "Gọi 111", "type": "oa.open.phone", "payload": {"phone_code": "111"}}
    assert invalid_field({"recipient": {"user_id": USER}, "message": template([button, phone])}) is None
    messenger_style = {
        "attachment": {"type": "template", "payload": {"template_type": "button", "text": "hi", "buttons": [button]}}
    }
    for bad in (
        template([button] * 6),
        template([{**button, "type": "postback"}]),
        template([{**button, "title": "x" * 101}]),
        messenger_style,
        {"text": "x" * 2001},
        {"text": ""},
    ):
        assert invalid_field({"recipient": {"user_id": USER}, "message": bad}) is not None, bad
    assert invalid_field({"recipient": {"user_id": "me"}, "message": {"text": "hi"}}) == "user_id"
    url = fake.base_url + "/v4/oa/access_token"
    form = {"refresh_token": REFRESH, "app_id": APP_ID, "grant_type": "refresh_token"}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=form, headers={"secret_key": "wrong"}) as response:
            assert "access_token" not in await response.json()
        async with http.post(url, data=form, headers={"secret_key": OA_SECRET}) as response:
            assert "access_token" not in await response.json(), "the OA secret key is not the app secret"
        async with http.post(url, data=form, headers={"secret_key": APP_SECRET}) as response:
            first = await response.json()
        assert first["expires_in"] == "90000" and first["refresh_token"] != REFRESH
        async with http.post(url, data=form, headers={"secret_key": APP_SECRET}) as response:
            again = await response.json()
        assert "access_token" not in again and again["error"] < 0
        assert fake.reused_refresh_tokens == [REFRESH]


# ---- privacy -----------------------------------------------------------------------------------


async def test_no_trace_of_people_or_tokens_after_a_run(
    bot: Worker, fake: FakeZaloAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """After a conversation and a refresh, no data file or log line holds the Zalo id, texts or tokens."""
    caplog.set_level(logging.DEBUG)
    quiet_libraries()  # as `antam run` configures logging
    typed = ["tôi tên Hoa Zyxw", "bị khách đánh ở nhà nghỉ Qwerty", "muốn xét nghiệm hiv Plokij"]
    await bot.post(fake.follow(USER))
    await bot.press(USER, "c:accept")
    for text in typed:
        await bot.say(USER, text)
    fake.revoke_access_token()
    await bot.post(fake.location(USER, 22.39, 103.46))
    fake.fail_next(error=OUTSIDE_WINDOW)
    await bot.say(USER, "menu")
    services = bot.services
    await bot.client.close()
    await services.close()
    secrets = [ACCESS, REFRESH, *(token for pair in fake.issued for token in pair)]
    assert len(secrets) == 4
    needles = [USER, *typed, "Zyxw", "Qwerty", "Plokij", *secrets]
    for path in data_files(services):
        content = path.read_bytes()
        assert not any(n.encode() in content for n in needles), path.name
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert "access token refreshed" in logged, "the run logged something, so this test can fail"
    assert not any(n in logged for n in [*needles, "Hoa"])
