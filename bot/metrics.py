"""Prometheus metrics (`/metrics`): what the service is doing, never who it is doing it for.

Labels are closed sets chosen here — channel, outcome, place of an error — so no label can ever
carry a pseudonym, platform id, code, address or text. Each worker process exposes its own
numbers; Prometheus scrapes every replica.

Who may read them: only a peer inside ANTAM_METRICS_ALLOW (default: loopback) that reached
the server directly. A request that came through a proxy (it carries X-Forwarded-For or the
like, or its peer is one of ANTAM_TRUSTED_PROXIES) is the public's, whatever address the proxy
connects from, and gets 404; deploy/Caddyfile does not forward /metrics at all.

What they must not tell: a counter is scraped every few seconds, so each increment is an event
with a time. Hence no ``_created`` series (the moment a labelled series first appeared is the
moment of its first event), and referral codes are counted issued and redeemed in total, not
per service type: "an HIV-test code was taken at 14:03" is health data about one person,
while the per-type figures belong in the staff app, where small counts are suppressed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable

import prometheus_client
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from bot.channels.registry import NAMES as CHANNELS
from bot.client_address import Network

# The `_created` series give the time of a series' first event (process-wide switch).
prometheus_client.disable_created_metrics()

# A registry of our own: tests build many apps in one process, and nothing else registers here.
REGISTRY = CollectorRegistry(auto_describe=True)

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
# Totals only: a per-service-type series would date one person's HIV-test or PEP code.
REFERRALS_ISSUED = Counter("antam_referrals_issued", "Referral codes issued (all service types).", registry=REGISTRY)
REFERRALS_REDEEMED = Counter(
    "antam_referrals_redeemed", "Referral codes redeemed at a service (all service types).", registry=REGISTRY
)
OUTBOX = Counter(
    "antam_outbox",
    "Messages the bot started, by channel and what became of them "
    "(sent, retried, given_up, unreachable, refused, no_page, outside_window, over_quota).",
    ["channel", "outcome"],
    registry=REGISTRY,
)
ERRORS = Counter(
    "antam_errors", "Failures, by where they happened (runtime, telegram, zalo, webchat, maintenance).", ["where"],
    registry=REGISTRY,
)


def channel_label(channel: str) -> str:
    """A channel name from the registry's closed set (anything else is "other")."""
    return channel if channel in CHANNELS else "other"


# Headers a reverse proxy adds: their presence means the request is the public's.
FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP", "X-Forwarded-Host", "X-Forwarded-Proto", "Via")


def may_scrape(request: web.Request, allowed: tuple[Network, ...], proxies: tuple[Network, ...]) -> bool:
    """Whether ``request`` comes straight from an allowed network, not through a proxy."""
    if any(name in request.headers for name in FORWARDING_HEADERS):
        return False
    try:
        peer = ipaddress.ip_address(request.remote or "")
    except ValueError:  # a Unix socket, or no peer at all
        return False
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
        peer = peer.ipv4_mapped
    if any(peer in network for network in proxies):
        return False
    return any(peer in network for network in allowed)


def metrics_view(
    allowed: tuple[Network, ...], proxies: tuple[Network, ...] = ()
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The /metrics handler: Prometheus' text format for allowed peers, 404 for everyone else."""

    async def view(request: web.Request) -> web.Response:
        if not may_scrape(request, allowed, proxies):
            return web.Response(status=404, text="404: Not Found")
        response = web.Response(body=generate_latest(REGISTRY))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        response.headers["Cache-Control"] = "no-store"
        return response

    return view
