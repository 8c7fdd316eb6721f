"""The client's address behind a reverse proxy, for rate limits only.

Behind a proxy every request comes from the proxy's address, so per-address limits would put
every person in one bucket. When the direct peer is a proxy listed in ANTAM_TRUSTED_PROXIES,
the address is the right-most X-Forwarded-For hop that is not itself a trusted proxy (hops to
its left can be forged by the client). The address is never stored or logged: callers keep
only a keyed hash of it, in memory.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str | None) -> tuple[Network, ...]:
    """"10.0.0.2, 172.18.0.0/16" → networks; raises ValueError naming a bad entry."""
    found = []
    for part in (text or "").split(","):
        part = part.strip()
        if part:
            try:
                found.append(ipaddress.ip_network(part, strict=False))
            except ValueError as exc:
                raise ValueError(f"'{part}' is not an IP address or network") from exc
    return tuple(found)


def _trusted(address: str, networks: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(request: web.Request, trusted: tuple[Network, ...]) -> str:
    remote = request.remote or ""
    if not trusted or not _trusted(remote, trusted):
        return remote
    hops = [hop.strip() for header in request.headers.getall("X-Forwarded-For", []) for hop in header.split(",")]
    for hop in reversed([hop for hop in hops if hop]):
        if not _trusted(hop, trusted):
            return hop
    return remote
