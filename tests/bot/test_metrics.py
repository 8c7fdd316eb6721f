"""/metrics: Prometheus numbers about the service, with nothing that could name a person."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import make_app
from bot.bootstrap import Services, open_services
from bot.clock import FixedClock
from bot.config import ConfigError, Settings, load_settings
from bot.redemption import redeem
from referrals.redeeming import Place

SESSION = "MeTrIcSsEsSiOn0123456789ab"
TYPED = "mình tên Lan Zyxquv, muốn xét nghiệm"


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in the exposition text (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_metrics_count_updates_and_referrals_without_personal_labels(
    client: TestClient[Any, Any], services: Services
) -> None:
    """Updates, latency and referrals are counted; no label carries a session, code or text."""
    before = await (await client.get("/metrics")).text()
    code = ""
    for message in ({"text": "/start"}, {"payload": "c:accept"}, {"text": TYPED}, {"payload": "w:3390"},
                    {"payload": "ri:tyt_binh_lu:1"}):
        answer = await (await client.post("/chat/send", json={"session": SESSION, **message})).json()
        for reply in answer["replies"]:
            if "Mã giới thiệu của bạn: " in reply["text"]:
                code = reply["text"].split("Mã giới thiệu của bạn: ")[1][:9]
    assert code
    assert (await redeem(services, code, Place(commune=3390))).ok
    response = await client.get("/metrics")
    assert response.status == 200 and response.content_type == "text/plain"
    after = await response.text()
    answered = sample(after, "antam_updates_total", channel="web", outcome="answered")
    assert answered - sample(before, "antam_updates_total", channel="web", outcome="answered") == 5
    assert sample(after, "antam_reply_seconds_count", channel="web") >= 5
    issued = sample(after, "antam_referrals_issued_total")
    assert issued - sample(before, "antam_referrals_issued_total") == 1
    redeemed = sample(after, "antam_referrals_redeemed_total")
    assert redeemed - sample(before, "antam_referrals_redeemed_total") == 1
    # Nothing that dates one person's code: no kind of service, no time a series first appeared.
    assert "_created" not in after and "service_type" not in after and "hiv_testing" not in after
    pseudonym = services.secrets.pseudonym("web", SESSION).hex()
    for secret in (SESSION, code, code.replace("-", ""), "Zyxquv", "127.0.0.1", pseudonym):
        assert secret not in after


async def _metrics_status(settings: Settings, clock: FixedClock, headers: dict[str, str] | None = None) -> int:
    services = await open_services(settings, clock=clock, warn=lambda _m: None)
    client = TestClient(TestServer(make_app(services, maintenance=False), host="127.0.0.1"))
    await client.start_server()
    try:
        response = await client.get("/metrics", headers=headers or {})
        if response.status == 200:
            assert "# TYPE antam_updates_total counter" in await response.text()
        return response.status
    finally:
        await client.close()
        await services.close()


async def test_metrics_only_for_allowed_direct_peers(settings: Settings, clock: FixedClock) -> None:
    """Loopback by default; a forwarded request, a trusted proxy's or one from outside ANTAM_METRICS_ALLOW gets 404."""
    assert await _metrics_status(settings, clock) == 200
    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP", "Via"):
        value = "for=203.0.113.9" if header == "Forwarded" else "203.0.113.9"
        assert await _metrics_status(settings, clock, {header: value}) == 404, header
    # Caddy on the same host connects from 127.0.0.1: as a trusted proxy it is the public.
    behind = settings.model_copy(update={"trusted_proxies": "127.0.0.1/32"})
    assert await _metrics_status(behind, clock) == 404
    elsewhere = settings.model_copy(update={"metrics_allow": "10.20.0.0/16"})
    assert await _metrics_status(elsewhere, clock) == 404
    nobody = settings.model_copy(update={"metrics_allow": "none"})
    assert await _metrics_status(nobody, clock) == 404
    wide = settings.model_copy(update={"metrics_allow": "10.20.0.0/16, 127.0.0.0/8"})
    assert await _metrics_status(wide, clock) == 200


def test_metrics_allow_is_validated() -> None:
    """ANTAM_METRICS_ALLOW takes networks (or "none"); a bad entry is named."""
    assert load_settings({}, env_file=None).metrics_allow == "127.0.0.1/32, ::1/128"
    assert load_settings({"ANTAM_METRICS_ALLOW": "none"}, env_file=None).metrics_networks == ()
    with pytest.raises(ConfigError, match="ANTAM_METRICS_ALLOW"):
        load_settings({"ANTAM_METRICS_ALLOW": "10.0.0.0/8, nonsense"}, env_file=None)
