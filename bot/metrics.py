"""Prometheus metrics (`/metrics`): what the service is doing, never who it is doing it for.

Labels are closed sets chosen here — channel, outcome, service type, place of an error — so no
label can ever carry a pseudonym, platform id, code, address or text. Each worker process
exposes its own numbers; Prometheus scrapes every replica.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

# A registry of our own: tests build many apps in one process, and nothing else registers here.
REGISTRY = CollectorRegistry(auto_describe=True)

CHANNELS = ("telegram", "zalo", "web", "console")
UPDATES = Counter(
    "antam_updates",
    "Inbound updates handled, by channel and outcome (answered, duplicate, group, error).",
    ["channel", "outcome"],
    registry=REGISTRY,
)
REPLY_SECONDS = Histogram(
    "antam_reply_seconds",
    "Time from an inbound update to its replies being ready (engine, storage, encryption).",
    ["channel"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
REFERRALS_ISSUED = Counter(
    "antam_referrals_issued", "Referral codes issued, by service type.", ["service_type"], registry=REGISTRY
)
REFERRALS_REDEEMED = Counter(
    "antam_referrals_redeemed", "Referral codes redeemed at a service, by service type.", ["service_type"], registry=REGISTRY
)
ERRORS = Counter(
    "antam_errors", "Failures, by where they happened (runtime, telegram, zalo, webchat, maintenance).", ["where"],
    registry=REGISTRY,
)


def channel_label(channel: str) -> str:
    """A channel name from the closed set (anything else is "other")."""
    return channel if channel in CHANNELS else "other"


async def metrics_view(request: web.Request) -> web.Response:
    """Serve the metrics in Prometheus' text format."""
    body = generate_latest(REGISTRY)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
