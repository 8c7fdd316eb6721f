"""The web chat over WebSocket and plain HTTP, through aiohttp's test client on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from bot.app import channel_of
from bot.channels.webchat import WebChat
from bot.bootstrap import Services
from storage.models import Person
from tests.support.web import page_origin

SESSION = "AbCdEfGhIjKlMnOpQrStUvWx01"
OTHER = "ZyXwVuTsRqPoNmLkJiHgFeDc98"


origin = page_origin


def payloads(answer: dict[str, Any]) -> list[str]:
    return [b["payload"] for reply in answer["replies"] for b in reply["buttons"]]


async def test_page_is_self_contained_and_locked_down(client: TestClient[Any, Any]) -> None:
    """The page loads nothing from elsewhere, runs no inline script, and sends strict headers."""
    response = await client.get("/")
    assert response.status == 200
    page = await response.text()
    assert '<html lang="vi"' in page and "Thoát nhanh" in page
    assert not re.search(r"""(src|href)=["']https?://""", page), "no external assets"
    assert "<script>" not in page and "onclick" not in page
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    for asset in ("/static/chat.js", "/static/chat.css"):
        assert (await client.get(asset)).status == 200
    english = await (await client.get("/", headers={"Accept-Language": "en-US,en;q=0.8"})).text()
    assert '<html lang="en"' in english and "Quick exit" in english


async def test_conversation_over_websocket(client: TestClient[Any, Any], services: Services) -> None:
    """The same conversation as elsewhere: notice, consent, menu, a question, quick exit."""
    async with client.ws_connect("/chat/ws", origin=origin(client)) as ws:
        await ws.send_json({"session": SESSION, "id": "m0000001", "text": "/start"})
        welcome = await ws.receive_json()
        assert payloads(welcome)[:3] == ["c:accept", "c:decline", "c:more"]
        await ws.send_json({"session": SESSION, "id": "m0000002", "payload": "c:accept"})
        assert "i" in payloads(await ws.receive_json())
        await ws.send_json({"session": SESSION, "id": "m0000003", "text": "xn hiv o dau"})
        answer = await ws.receive_json()
        assert "Xét nghiệm HIV" in answer["replies"][0]["text"] and answer["replies"][0]["protect"] is True
        await ws.send_json({"session": SESSION, "id": "m0000004", "payload": "x"})
        assert (await ws.receive_json())["replies"][0]["quick_exit"] is True
    async with services.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Person)) == 1


async def test_replies_carry_blocks_and_leave_the_quick_exit_to_the_header(client: TestClient[Any, Any]) -> None:
    """The JSON keeps "text" and "buttons" and gains "blocks"; no reply repeats the header's
    "Thoát nhanh"; the page tells its script how many buttons to show and its extra labels."""
    page = await (await client.get("/")).text()
    assert 'data-buttons-shown="5"' in page and 'data-more="Xem thêm"' in page and 'data-copy="Chép mã"' in page
    welcome = await (await client.post("/chat/send", json={"session": SESSION, "text": "/start"})).json()
    assert payloads(welcome) == ["c:accept", "c:decline", "c:more"]
    await client.post("/chat/send", json={"session": SESSION, "payload": "c:accept"})
    answer = await (await client.post("/chat/send", json={"session": SESSION, "payload": "e"})).json()
    (reply,) = answer["replies"]
    assert "x" not in payloads(answer) and reply["text"] and reply["buttons"]
    assert reply["blocks"][0]["kind"] == "urgent"
    assert {"113", "115"} <= {block["dial"] for block in reply["blocks"] if block["kind"] == "phone"}
    # Typing "thoát nhanh" still leaves.
    left = await (await client.post("/chat/send", json={"session": SESSION, "text": "thoát nhanh"})).json()
    assert left["replies"][0]["quick_exit"] is True


async def test_http_fallback(client: TestClient[Any, Any]) -> None:
    """Without WebSockets the page talks over POST /chat/send with the same messages."""
    response = await client.post("/chat/send", json={"session": SESSION, "text": "/start"})
    assert response.status == 200
    assert "c:accept" in payloads(await response.json())
    response = await client.post("/chat/send", json={"session": SESSION, "location": {"latitude": 22.39, "longitude": 103.46}})
    assert "tọa độ" in (await response.json())["replies"][0]["text"]


async def test_peer_link_and_redelivery(client: TestClient[Any, Any], services: Services) -> None:
    """/?p=CODE reaches the engine as a start code; a message sent twice is answered once."""
    first = await client.post("/chat/send", json={"session": SESSION, "start": "peer_Lan01"})
    assert "c:accept:peer_Lan01" in payloads(await first.json())
    message = {"session": SESSION, "id": "dup00001", "payload": "c:accept:peer_Lan01"}
    assert (await (await client.post("/chat/send", json=message)).json())["replies"]
    assert (await (await client.post("/chat/send", json=message)).json())["replies"] == []


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"text": "hi"}',
        b'{"session": "short", "text": "hi"}',
        b'{"session": "AbCdEfGhIjKlMnOpQrStUvWx01"}',
        b'{"session": "AbCdEfGhIjKlMnOpQrStUvWx01", "text": "a", "payload": "m"}',
        b'{"session": "AbCdEfGhIjKlMnOpQrStUvWx01", "text": 5}',
        b'{"session": "AbCdEfGhIjKlMnOpQrStUvWx01", "payload": ""}',
        b'{"session": "AbCdEfGhIjKlMnOpQrStUvWx01", "location": {"latitude": 200, "longitude": 1}}',
        b'{"session": "AbCdEfGhIjKlMnOpQrStUvWx01", "location": {"latitude": "NaN", "longitude": 1}}',
        b'{"session": "AbCdEfGhIjKlMnOpQrStUvWx01", "id": "bad id!", "text": "a"}',
        # Nesting deep enough for RecursionError, and numbers float() cannot take (OverflowError).
        b'{"session": "AbCdEfGhIjKlMnOpQrStUvWx01", "text": ' + b"[" * 4000 + b"]" * 4000 + b"}",
        b"[" * 8000,
        b'{"session": "AbCdEfGhIjKlMnOpQrStUvWx01", "location": {"latitude": ' + b"9" * 400 + b', "longitude": 1}}',
        b'{"session": "AbCdEfGhIjKlMnOpQrStUvWx01", "location": {"latitude": 1e400, "longitude": 1}}',
        b'{"session": "AbCdEfGhIjKlMnOpQrStUvWx01", "location": {"latitude": NaN, "longitude": 1}}',
        b'{"session": "AbCdEfGhIjKlMnOpQrStUvWx01", "location": {"latitude": true, "longitude": 1}}',
    ],
)
async def test_bad_requests_get_400(client: TestClient[Any, Any], body: bytes) -> None:
    """Malformed messages get a 400 with a readable reason, never a stack trace."""
    response = await client.post("/chat/send", data=body, headers={"Content-Type": "application/json"})
    assert response.status == 400
    answer = await response.json()
    assert answer["error"] == "bad_request" and "Traceback" not in answer["detail"]


async def test_a_body_arriving_in_pieces_is_read_whole(client: TestClient[Any, Any]) -> None:
    """A POST whose body comes in several segments (chunked, with pauses) is answered, not cut."""
    body = json.dumps({"session": SESSION, "text": "xét nghiệm HIV ở đâu " * 40}, ensure_ascii=False).encode()

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 700):
            yield body[start : start + 700]
            await asyncio.sleep(0.02)

    response = await client.post("/chat/send", data=pieces(), headers={"Content-Type": "application/json"})
    assert response.status == 200, await response.text()
    too_big = json.dumps({"session": SESSION, "text": "a" * 9000}).encode()

    async def big_pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(too_big), 3000):
            yield too_big[start : start + 3000]

    assert (await client.post("/chat/send", data=big_pieces(), headers={"Content-Type": "application/json"})).status == 413


async def test_oversized_and_overlong(client: TestClient[Any, Any]) -> None:
    """A body over 8 KB gets 413; text over 2,000 characters gets 400."""
    big = {"session": SESSION, "text": "a" * 9000}
    assert (await client.post("/chat/send", json=big)).status == 413
    long = {"session": SESSION, "text": "a" * 2001}
    assert (await client.post("/chat/send", json=long)).status == 400


async def test_bad_websocket_messages_keep_the_connection(client: TestClient[Any, Any]) -> None:
    """A malformed WebSocket message gets an error answer and the conversation goes on."""
    async with client.ws_connect("/chat/ws", origin=origin(client)) as ws:
        await ws.send_str("{nope")
        assert (await ws.receive_json())["error"] == "bad_request"
        await ws.send_bytes(b"\x00\x01")
        assert (await ws.receive_json())["error"] == "bad_request"
        for hostile in ("[" * 4000 + "]" * 4000, '{"session": "%s", "location": {"latitude": %s, "longitude": 1}}' % (SESSION, "9" * 400)):
            await ws.send_str(hostile)
            answer = await ws.receive_json()
            assert answer["error"] == "bad_request" and answer["detail"] in ("nested too deeply", "number out of range")
        await ws.send_json({"session": SESSION, "text": "menu"})
        assert "i" in payloads(await ws.receive_json())


async def test_rate_limits(client: TestClient[Any, Any]) -> None:
    """Sending too fast gets a polite Vietnamese reply (WebSocket) or a 429 (HTTP), bounded in count."""
    async with client.ws_connect("/chat/ws", origin=origin(client)) as ws:
        slowed = False
        for n in range(40):
            await ws.send_json({"session": SESSION, "text": f"menu {n}"})
            answer = await ws.receive_json()
            if answer.get("error") == "rate_limited":
                assert "đợi một chút" in answer["replies"][0]["text"]
                slowed = True
                break
        assert slowed
    statuses = [(await client.post("/chat/send", json={"session": OTHER, "text": "menu"})).status for _ in range(60)]
    assert 429 in statuses and statuses[0] == 200


async def test_connections_per_address_are_limited(client: TestClient[Any, Any]) -> None:
    """One address cannot hold more than a few WebSockets open at once."""
    webchat = channel_of(client.app, WebChat)
    sockets = [await client.ws_connect("/chat/ws", origin=origin(client)) for _ in range(webchat.max_connections_per_address)]
    try:
        response = await client.get("/chat/ws", headers={"Origin": origin(client), "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        assert response.status == 429
    finally:
        for ws in sockets:
            await ws.close()


async def test_no_address_or_session_in_logs_or_database(
    client: TestClient[Any, Any], services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither the address nor the browser's session id is logged or stored."""
    from bot.logs import quiet_libraries

    caplog.set_level(logging.DEBUG)
    quiet_libraries()
    await client.post("/chat/send", json={"session": SESSION, "payload": "c:accept"})
    await client.post("/chat/send", json={"session": SESSION, "text": "bị khách đánh"})
    assert "127.0.0.1" not in caplog.text and SESSION not in caplog.text
    async with services.db.transaction() as session:
        for row in (await session.execute(select(Person))).scalars():
            assert SESSION.encode() not in row.pseudonym + row.record
