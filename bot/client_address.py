"""The client's address behind a reverse proxy, for rate limits only.

Behind a proxy every request comes from the proxy's address, so per-address limits would put
every person in one bucket. When the direct peer is a proxy listed in ANTAM_TRUSTED_PROXIES,
the address is the right-most X-Forwarded-For hop that is not itself a trusted proxy (hops to
its left can be forged by the client). The address is never stored or logged: callers keep
only a keyed hash of it (or of its block: an IPv6 /64, an IPv4 /24), in memory.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
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


def address_block(address: str, *, ipv4_prefix: int = 32, ipv6_prefix: int = 64) -> str:
    """The network an address is counted in: "2001:db8:1:2::/64", "203.0.113.0/24".

    One IPv6 host gets a whole /64 (often far more) from its provider and can take a new
    address in it at will, so IPv6 is counted per /64. IPv4 addresses are scarce and shared
    (a carrier's NAT puts many phones behind one), so ``ipv4_prefix`` says how wide an IPv4
    block is: 32 for per-address limits, 24 (a setting) for the limits on new people. An IPv4
    address written as IPv6 (``::ffff:1.2.3.4``) is IPv4; anything that is not an address
    (a Unix socket's empty peer) is its own block.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = ipv4_prefix if ip.version == 4 else ipv6_prefix
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


class AddressKeys:
    """Keyed hashes of a request's address blocks, for limits held in memory only.

    The key is random per process and never stored, so nothing links a hash to an address
    after a restart, and no two processes share hashes. ``rate`` is the block for message
    limits (IPv6 /64, one IPv4 address); ``block`` the wider one for limits on new sessions,
    new people and referral codes (IPv6 /64, IPv4 /``ipv4_block``).
    """

    def __init__(self, proxies: tuple[Network, ...], *, ipv4_block: int = 24) -> None:
        self._salt = os.urandom(32)
        self.proxies = proxies
        self.ipv4_block = ipv4_block

    def _hash(self, kind: bytes, block: str) -> bytes:
        return hmac.new(self._salt, kind + b":" + block.encode(), hashlib.sha256).digest()[:16]

    def rate(self, request: web.Request) -> bytes:
        return self._hash(b"rate", address_block(client_address(request, self.proxies)))

    def block(self, request: web.Request) -> bytes:
        address = client_address(request, self.proxies)
        return self._hash(b"block", address_block(address, ipv4_prefix=self.ipv4_block))
