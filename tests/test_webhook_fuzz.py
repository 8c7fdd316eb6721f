"""Fuzzing every endpoint that reads JSON from outside: both webhooks, the web chat's POST and WebSocket.

Only 2xx and 4xx answers, the server keeps answering, a WebSocket answers every message and
stays open, and a rejected request stores nothing. Bodies include what broke the server before
(issue #15 §4): nesting deep enough for RecursionError, integers of hundreds of digits (a
latitude float() cannot take), 1e400, NaN and Infinity, placed where real fields go. Some
inputs carry the right secret or a valid signature, so parsing behind the checks is fuzzed
too, not only the checks. Counts are bounded (about 100–150 examples per endpoint, seconds each).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import WSCloseCode, WSMsgType
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import func, select

from bot.app import CHANNELS, channel_of, make_app
from bot.channels.zalo import ZaloChannel
from bot.bootstrap import Services, open_services
from bot.channels.bounded_json import loads
from bot.channels.telegram import SECRET_HEADER, WEBHOOK_PATH
from bot.channels.webchat import MAX_BODY
from bot.channels.zalo import WEBHOOK_PATH as ZALO_PATH
from bot.clock import FixedClock
from bot.config import Settings
from storage.models import Person, ProcessedUpdate
from storage.referral_models import Counter
from tests.support.settings import START
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.fakes.zalo_api import SIGNATURE_HEADER, FakeZaloAPI

TOKEN = "616161:FUZZ-token_abc"
APP_ID = "fuzz-app"
OA_SECRET = "fuzz-oa-secret"

# What an HTTP client can put in a header value (no control characters).
HEADER_TEXT = st.characters(min_codepoint=32, max_codepoint=126)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
HOLE = "\x00hole\x00"  # replaced by a raw JSON fragment after json.dumps
nested = st.builds(
    lambda depth, opener: opener * depth + ("1" if opener == '{"a":' else "") + ("}" if opener == '{"a":' else "]") * depth,
    st.sampled_from([33, 200, 1100, 4000]),
    st.sampled_from(["[", '{"a":']),
) | st.builds(lambda depth: "[" * depth, st.sampled_from([40, 2000]))
huge_numbers = (
    st.sampled_from(["1e400", "-1e400", "1E+99999", "NaN", "Infinity", "-Infinity", "0." + "9" * 400])
    | st.integers(min_value=20, max_value=4400).map(lambda n: "9" * n)
    | st.integers(min_value=2**64, max_value=2**300).map(str)
)
extremes = nested | huge_numbers | json_values.map(json.dumps)


def with_holes(shape: st.SearchStrategy[Any], fragments: st.SearchStrategy[str] = extremes) -> st.SearchStrategy[bytes]:
    """``shape`` as JSON, each HOLE string in it replaced by a drawn raw fragment."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        text = json.dumps(draw(shape))
        while json.dumps(HOLE) in text:
            text = text.replace(json.dumps(HOLE), draw(fragments), 1)
        return text.encode()

    return build()


def maybe_hole(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return good | st.just(HOLE)


telegram_user = st.fixed_dictionaries(
    {"id": maybe_hole(st.integers(1, 2**40)), "is_bot": st.just(False), "first_name": maybe_hole(st.just("A"))}
)
telegram_chat = st.fixed_dictionaries({"id": maybe_hole(st.integers(1, 2**40)), "type": maybe_hole(st.just("private"))})
telegram_shaped = st.fixed_dictionaries(
    {"update_id": st.integers() | st.text(max_size=5) | st.just(HOLE)},
    optional={
        "message": st.dictionaries(st.sampled_from(["message_id", "from", "chat", "date", "text", "entities"]), json_values)
        | st.fixed_dictionaries(
            {
                "message_id": maybe_hole(st.integers(1, 10**6)),
                "date": st.just(1_700_000_000),
                "from": maybe_hole(telegram_user),
                "chat": maybe_hole(telegram_chat),
            },
            optional={"text": maybe_hole(st.text(max_size=20)), "location": st.just({"latitude": HOLE, "longitude": HOLE})},
        ),
        "callback_query": st.dictionaries(st.sampled_from(["id", "from", "data", "message"]), maybe_hole(json_values)),
    },
)
zalo_shaped = st.fixed_dictionaries(
    {
        "app_id": st.just(APP_ID) | st.text(max_size=8),
        "timestamp": st.just(str(int(START.timestamp() * 1000))) | st.integers(0, 2**45).map(str) | st.integers(),
    },
    optional={
        "event_name": st.sampled_from(["user_send_text", "user_send_location", "user_received_message", "follow"]) | st.text(max_size=10),
        "sender": st.fixed_dictionaries({"id": maybe_hole(st.text(max_size=12))}) | json_values | st.just(HOLE),
        "message": st.dictionaries(st.sampled_from(["msg_id", "text", "attachments"]), maybe_hole(json_values))
        | st.fixed_dictionaries(
            {
                "msg_id": st.text(max_size=8),
                "attachments": st.just(
                    [{"type": "location", "payload": {"coordinates": {"latitude": HOLE, "longitude": HOLE}}}]
                ),
            }
        ),
        "recipient": json_values,
    },
)


@st.composite
def requests(draw: st.DrawFn, target: str) -> tuple[str, bytes, dict[str, str], bool]:
    """(path, body, headers, authentic): a random request, sometimes carrying valid credentials."""
    kind = draw(st.sampled_from(["bytes", "json", "extreme", "shaped", "shaped"]))
    if kind == "bytes":
        body = draw(st.binary(max_size=3000))
    elif kind == "json":
        body = json.dumps(draw(json_values)).encode()
    elif kind == "extreme":
        body = draw(extremes).encode()
    else:
        body = draw(with_holes(telegram_shaped if target == "telegram" else zalo_shaped))
    headers = {"Content-Type": draw(st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""]))}
    authentic = draw(st.booleans())
    if target == "telegram":
        headers[SECRET_HEADER] = "fuzz-secret" if authentic else draw(st.text(alphabet="abcdef-_0123", max_size=20))
        return WEBHOOK_PATH, body, headers, authentic
    if authentic:
        try:
            data = json.loads(body)
            text = str(data["app_id"]).encode() + body + str(data["timestamp"]).encode()
        except (ValueError, KeyError, TypeError, RecursionError):
            text = b""  # not signable: sent with a signature that cannot match
        headers[SIGNATURE_HEADER] = "mac=" + hashlib.sha256(text + OA_SECRET.encode()).hexdigest()
    else:
        headers[SIGNATURE_HEADER] = draw(st.sampled_from(["", "mac=", "mac=" + "0" * 64]) | st.text(HEADER_TEXT, max_size=70))
    return ZALO_PATH, body, headers, authentic


@pytest.fixture
async def server(settings: Settings, clock: FixedClock) -> AsyncIterator[tuple[TestClient[Any, Any], Services]]:
    async with FakeTelegramAPI(token=TOKEN) as telegram, FakeZaloAPI(
        app_id=APP_ID, oa_secret_key=OA_SECRET, access_token="a" * 20, refresh_token="r" * 20
    ) as zalo:
        configured = settings.model_copy(
            update={
                "public_url": "https://antam.example.org",
                "telegram_bot_token": SecretStr(TOKEN),
                "telegram_api_base_url": telegram.base_url,
                "telegram_webhook_secret": SecretStr("fuzz-secret"),
                "zalo_app_id": APP_ID,
                "zalo_oa_secret_key": SecretStr(OA_SECRET),
                "zalo_access_token": SecretStr("a" * 20),
                "zalo_refresh_token": SecretStr("r" * 20),
                "zalo_app_secret_key": SecretStr("a" * 20),
                "zalo_api_base_url": zalo.base_url,
                "zalo_oauth_base_url": zalo.base_url,
                "trusted_proxies": "127.0.0.1/32",
            }
        )
        services = await open_services(configured, clock=clock, warn=lambda _m: None)
        app = make_app(services, maintenance=False)
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        try:
            assert {"telegram", "zalo"} <= set(app[CHANNELS])
            yield client, services
        finally:
            await client.close()
            await services.close()


async def _stored(services: Services) -> tuple[int, int, int]:
    found = []
    async with services.db.transaction() as session:
        for table in (Person, ProcessedUpdate, Counter):
            found.append(int(await session.scalar(select(func.count()).select_from(table)) or 0))
    return found[0], found[1], found[2]


FUZZ = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


async def _post_and_check(client: TestClient[Any, Any], services: Services, request: tuple[str, bytes, dict[str, str], bool]) -> int:
    path, body, headers, _authentic = request
    before = await _stored(services)
    response = await client.post(path, data=body, headers={k: v for k, v in headers.items() if v})
    assert 200 <= response.status < 500, (path, response.status)
    await channel_of(client.app, ZaloChannel).drain()
    if response.status >= 400:
        assert await _stored(services) == before, "a rejected request stored something"
    assert (await client.get("/healthz")).status == 200, "the server is still up"
    return response.status


@FUZZ
@given(request=requests("telegram"))
async def test_telegram_webhook_survives_anything(
    server: tuple[TestClient[Any, Any], Services], request: tuple[str, bytes, dict[str, str], bool]
) -> None:
    """Any body and headers at /webhooks/telegram: a 2xx or 4xx answer, nothing stored when rejected."""
    status = await _post_and_check(*server, request)
    if not request[3]:
        assert status == 403, "a wrong secret is refused before the body is read"
    elif status == 400:
        # Only a body that is no update at all; one with odd fields is dropped with 200, or
        # Telegram would deliver it again and again.
        try:
            data = loads(request[1], max_bytes=256 * 1024)
        except ValueError:
            return
        assert not isinstance(data, dict) or not isinstance(data.get("update_id"), int) or isinstance(data["update_id"], bool)


@FUZZ
@given(request=requests("zalo"))
async def test_zalo_webhook_survives_anything(
    server: tuple[TestClient[Any, Any], Services], request: tuple[str, bytes, dict[str, str], bool]
) -> None:
    """Any body and headers at /webhooks/zalo: 2xx or 4xx; without a valid signature 401, whatever the body."""
    status = await _post_and_check(*server, request)
    if not request[3]:
        assert status == 401, "no secret, no parser: 401 whatever the body's shape"


CHAT_SESSION = "FuZzSeSsIoN0123456789abcd"
chat_shaped = st.fixed_dictionaries(
    {"session": st.just(CHAT_SESSION) | st.just(HOLE) | st.text(max_size=30)},
    optional={
        "text": maybe_hole(st.text(max_size=40)),
        "payload": maybe_hole(st.sampled_from(["m", "c:accept", "x"])),
        "start": maybe_hole(st.text(max_size=10)),
        "location": st.just({"latitude": HOLE, "longitude": HOLE}) | maybe_hole(json_values),
        "id": maybe_hole(st.just("m0000001")),
    },
)
chat_bodies = with_holes(chat_shaped) | st.binary(max_size=600) | extremes.map(str.encode) | with_holes(
    st.just({"session": CHAT_SESSION, "location": {"latitude": HOLE, "longitude": 105.8}}), huge_numbers
)


def _page_origin(services: Services) -> str:
    """The web chat page's own origin: ANTAM_PUBLIC_URL's (the fuzzed server has one set)."""
    assert services.settings.public_url
    return services.settings.public_url.rstrip("/")


def _forwarded() -> dict[str, str]:
    """A random visitor behind the trusted proxy, so rate limits never stop the fuzzing before the parser."""
    return {"X-Forwarded-For": ".".join(str(random.randrange(1, 255)) for _ in range(4))}


@FUZZ
@given(body=chat_bodies)
async def test_chat_send_survives_anything(server: tuple[TestClient[Any, Any], Services], body: bytes) -> None:
    """Any body at POST /chat/send: a JSON answer with 2xx or 4xx, never a 500."""
    client, services = server
    headers = {"Content-Type": "application/json", "Origin": _page_origin(services), **_forwarded()}
    response = await client.post("/chat/send", data=body, headers=headers)
    assert 200 <= response.status < 500, response.status
    assert "error" in await response.json() or response.status == 200


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(bodies=st.lists(chat_bodies, min_size=1, max_size=3))
async def test_chat_websocket_survives_anything(server: tuple[TestClient[Any, Any], Services], bodies: list[bytes]) -> None:
    """Any messages on /chat/ws: each gets one JSON answer and the connection stays open."""
    client, services = server
    headers = {"Origin": _page_origin(services), **_forwarded()}
    async with client.ws_connect("/chat/ws", headers=headers) as ws:
        for body in bodies:
            try:
                await ws.send_str(body.decode("utf-8"))
            except UnicodeDecodeError:
                await ws.send_bytes(body)
            answer = await ws.receive(timeout=10)
            if len(body) > MAX_BODY:  # over the 8 KB message limit: closed by aiohttp on purpose
                assert ws.close_code == WSCloseCode.MESSAGE_TOO_BIG
                return
            assert answer.type is WSMsgType.TEXT, f"the server dropped the connection ({answer.type.name})"
            json.loads(answer.data)
        assert not ws.closed
