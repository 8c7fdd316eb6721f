"""/metrics: Prometheus numbers about the service, with nothing that could name a person."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from bot.bootstrap import Services
from bot.redemption import Place, redeem
from tests.test_webchat import client  # noqa: F401  (the web chat's test client fixture)

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
    issued = sample(after, "antam_referrals_issued_total", service_type="hiv_testing")
    assert issued - sample(before, "antam_referrals_issued_total", service_type="hiv_testing") == 1
    redeemed = sample(after, "antam_referrals_redeemed_total", service_type="hiv_testing")
    assert redeemed - sample(before, "antam_referrals_redeemed_total", service_type="hiv_testing") == 1
    pseudonym = services.secrets.pseudonym("web", SESSION).hex()
    for secret in (SESSION, code, code.replace("-", ""), "Zyxquv", "127.0.0.1", pseudonym):
        assert secret not in after
