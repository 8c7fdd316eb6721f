"""Fuzzing both webhooks (Telegram and Zalo) with arbitrary bodies and headers.

Only 2xx and 4xx answers, the server keeps answering, and a rejected request stores nothing.
Some inputs carry the right secret or a valid signature, so parsing behind the checks is
fuzzed too, not only the checks.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import func, select

from bot.app import TELEGRAM, ZALO, make_app
from bot.bootstrap import Services, open_services
from bot.channels.telegram import SECRET_HEADER, WEBHOOK_PATH
from bot.channels.zalo import WEBHOOK_PATH as ZALO_PATH
from bot.clock import FixedClock
from bot.config import Settings
from storage.models import Person, ProcessedUpdate
from storage.referral_models import Counter
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
telegram_shaped = st.fixed_dictionaries(
    {"update_id": st.integers() | st.text(max_size=5)},
    optional={
        "message": st.dictionaries(st.sampled_from(["message_id", "from", "chat", "date", "text", "entities"]), json_values),
        "callback_query": st.dictionaries(st.sampled_from(["id", "from", "data", "message"]), json_values),
    },
)
zalo_shaped = st.fixed_dictionaries(
    {"app_id": st.just(APP_ID) | st.text(max_size=8), "timestamp": st.integers(0, 2**45).map(str) | st.integers()},
    optional={
        "event_name": st.sampled_from(["user_send_text", "user_send_location", "user_received_message", "follow"]) | st.text(max_size=10),
        "sender": st.fixed_dictionaries({"id": st.text(max_size=12)}) | json_values,
        "message": st.dictionaries(st.sampled_from(["msg_id", "text", "attachments"]), json_values),
        "recipient": json_values,
    },
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, bytes, dict[str, str], bool]:
    """(path, body, headers, authentic): a random request, sometimes carrying valid credentials."""
    target = draw(st.sampled_from(["telegram", "zalo"]))
    kind = draw(st.sampled_from(["bytes", "json", "shaped"]))
    if kind == "bytes":
        body = draw(st.binary(max_size=3000))
    elif kind == "json":
        body = json.dumps(draw(json_values)).encode()
    else:
        body = json.dumps(draw(telegram_shaped if target == "telegram" else zalo_shaped)).encode()
    headers = {"Content-Type": draw(st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""]))}
    authentic = draw(st.booleans())
    if target == "telegram":
        headers[SECRET_HEADER] = "fuzz-secret" if authentic else draw(st.text(alphabet="abcdef-_0123", max_size=20))
        return WEBHOOK_PATH, body, headers, authentic
    if authentic:
        try:
            data = json.loads(body)
            text = str(data["app_id"]).encode() + body + str(data["timestamp"]).encode()
        except (ValueError, KeyError, TypeError):
            text = b""
        import hashlib

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
                "zalo_api_base_url": zalo.base_url,
                "zalo_oauth_base_url": zalo.base_url,
            }
        )
        services = await open_services(configured, clock=clock, warn=lambda _m: None)
        app = make_app(services, maintenance=False)
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        try:
            assert TELEGRAM in app and ZALO in app
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


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(request=requests())
async def test_webhooks_survive_anything(
    server: tuple[TestClient[Any, Any], Services], request: tuple[str, bytes, dict[str, str], bool]
) -> None:
    """Any body and headers: a 2xx or 4xx answer, and nothing stored when the request is rejected."""
    client, services = server
    path, body, headers, _authentic = request
    before = await _stored(services)
    response = await client.post(path, data=body, headers={k: v for k, v in headers.items() if v})
    assert 200 <= response.status < 500, (path, response.status)
    await client.app[ZALO].drain()
    if response.status >= 400:
        assert await _stored(services) == before, "a rejected request stored something"
    assert (await client.get("/healthz")).status == 200, "the server is still up"
