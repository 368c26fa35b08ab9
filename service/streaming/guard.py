"""No SSRF: a destination's address is resolved once, checked, and that address is the one used.

Loopback, link-local (cloud metadata included), private, shared, multicast, reserved and
unspecified addresses are refused, and so is the service's own engine, unless an allowed network
(``AUDITLOG_DESTINATION_ALLOW``, CIDRs) contains the address. Every address a name resolves to
must pass (a name with one public and one private address is refused). Senders connect to the
checked address, keeping the name for TLS (SNI and certificate checks) and the ``Host`` header;
they never follow redirects.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

from service.streaming.senders.base import DeliveryError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[Network, ...]:
    """``10.0.0.0/8, 127.0.0.1`` → networks; :class:`ValueError` naming a bad one."""
    networks = []
    for part in (p.strip() for p in text.split(",")):
        if part:
            networks.append(ipaddress.ip_network(part, strict=False))
    return tuple(networks)


def _refusal(address: Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = [address.ipv4_mapped, address.sixtofour, *(address.teredo or ())]
        for inner in embedded:  # an IPv4 address carried inside: judged as itself
            if inner is not None and (reason := _refusal(inner)) is not None:
                return reason
        if address.ipv4_mapped is not None:
            return None
    for reason, test in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("private", address.is_private),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("unspecified", address.is_unspecified),
        ("not global", not address.is_global),
    ):
        if test:
            return reason
    return None


@dataclass(frozen=True)
class AddressGuard:
    allowed: tuple[Network, ...] = ()
    """Networks allowed even if they would be refused (a receiver on the service's network)."""
    forbidden: frozenset[tuple[str, int]] = field(default_factory=frozenset)
    """``(host, port)`` of the service's own engine (names and addresses): never a destination."""

    def check(self, host: str, port: int, addresses: Iterable[str]) -> list[str]:
        """``addresses`` if every one may be reached; :class:`DeliveryError` (not retried)
        naming the first that may not."""
        checked = []
        own = DeliveryError(f"{host}:{port} is the service's own engine", retry=False)
        if (host.lower().rstrip("."), port) in self.forbidden:
            raise own
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if (str(address), port) in self.forbidden:
                raise own
            allowed = any(address in network for network in self.allowed)
            reason = None if allowed else _refusal(address)
            if reason is not None:
                where = f"{host} resolves to {address}" if host != str(address) else host
                raise DeliveryError(
                    f"{where}, a {reason} address: refused "
                    "(AUDITLOG_DESTINATION_ALLOW lists networks to allow)",
                    retry=False,
                )
            checked.append(str(address))
        return checked

    def check_url(self, url: str) -> None:
        """Check a URL's host before a request: an address written in the URL is never
        resolved (HTTP clients skip the resolver for it), so it is checked here; a name is
        checked when it is resolved (:class:`GuardedResolver`)."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme, 0)
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            if (host, port) in self.forbidden:
                raise DeliveryError(f"{host}:{port} is the service's own engine",
                                    retry=False) from None  # fmt: skip
            return
        self.check(host, port, [host])

    async def resolve(self, host: str, port: int) -> list[str]:
        """The checked addresses of ``host`` (resolved once, here)."""
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as e:
            raise DeliveryError(f"cannot resolve {host}: {e}") from e
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise DeliveryError(f"{host} has no address")
        return self.check(host, port, addresses)


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver through :class:`AddressGuard`: the connection goes to the checked
    address, TLS still checks the name."""

    def __init__(self, guard: AddressGuard) -> None:
        self.guard = guard

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await self.guard.resolve(host, port)
        return [
            ResolveResult(hostname=host, host=address, port=port,
                          family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                          proto=0, flags=socket.AI_NUMERICHOST)
            for address in addresses
        ]  # fmt: skip

    async def close(self) -> None:
        return None


def engine_endpoints(urls: Iterable[str]) -> frozenset[tuple[str, int]]:
    """``(host, port)`` of each engine URL, the host lower-case."""
    found: set[tuple[str, int]] = set()
    for url in urls:
        parts = urlsplit(url)
        if parts.hostname:
            default = 443 if parts.scheme == "https" else 9200
            found.add((parts.hostname.lower().rstrip("."), parts.port or default))
    return frozenset(found)
