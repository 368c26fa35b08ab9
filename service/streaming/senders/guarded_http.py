"""HTTP POSTs to a customer's receiver: through the address guard, never redirected, and every
failure a :class:`~.base.DeliveryError` that says whether sending again may help.

The session is made on first use (inside the running loop) with :class:`GuardedResolver`; a URL
whose host is an IP address is checked here, since aiohttp does not ask a resolver for one. A
``ca_pem`` setting replaces the system's trusted certificates. Messages name the destination as
``scheme://host:port`` only: no path, query or user info, which may hold secrets.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from service.streaming.guard import AddressGuard, GuardedResolver
from service.streaming.senders.base import DeliveryError, Target

DEFAULT_TIMEOUT_S = 30.0
MAX_ANSWER_BYTES = 16 * 1024 * 1024
USER_AGENT = "auditlog-streaming/1"


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        """The body as JSON; ``None`` when it is not JSON."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None

    def excerpt(self, limit: int = 200) -> str:
        text = self.body[:limit].decode("utf-8", "replace").strip()
        return " ".join(text.split())


def destination_of(url: str) -> str:
    """``https://splunk.example.com:8088`` for any URL of that host (for messages)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def status_error(status: int, *, where: str, detail: str = "") -> DeliveryError:
    """The error of a non-2xx answer: not retried for a redirect, refused credentials or another
    4xx (but 408 and 429); retried for 408, 429, 5xx and anything else."""
    said = f": {detail}" if detail else ""
    if 300 <= status < 400:
        return DeliveryError(
            f"{where} answered HTTP {status}, a redirect, which is not followed: "
            "set the destination's URL to the final address",
            retry=False,
        )
    if status in (401, 403):
        return DeliveryError(f"{where} refused the credentials (HTTP {status}){said}", retry=False)
    if 400 <= status < 500 and status not in (408, 429):
        return DeliveryError(f"{where} refused the request (HTTP {status}){said}", retry=False)
    return DeliveryError(f"{where} answered HTTP {status}{said}", retry=True)


def _ssl_context(target: Target) -> ssl.SSLContext | bool:
    ca_pem = target.settings.get("ca_pem")
    if not ca_pem:
        return True
    try:
        return ssl.create_default_context(cadata=str(ca_pem))
    except (ssl.SSLError, ValueError) as e:
        raise DeliveryError(
            f"the destination's ca_pem is not a PEM bundle: {e}", retry=False
        ) from e


class GuardedHttp:
    """One connection pool to one destination; :meth:`close` releases it."""

    def __init__(self, target: Target, guard: AddressGuard) -> None:
        self.target, self.guard = target, guard
        self.where = destination_of(target.url)
        self.timeout_s = float(target.settings.get("timeout_s") or DEFAULT_TIMEOUT_S)
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(self.guard),
                use_dns_cache=False,
                ssl=_ssl_context(self.target),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                headers={"User-Agent": USER_AGENT},
                trust_env=False,
            )
        return self._session

    def _check_literal_address(self, url: str) -> None:
        if urlsplit(url).scheme not in ("http", "https"):
            raise DeliveryError(f"{self.where} is not an http(s) URL", retry=False)
        self.guard.check_url(url)  # an address in the URL: the resolver never sees it

    async def post(
        self,
        url: str,
        *,
        body: bytes,
        headers: dict[str, str],
        params: dict[str, str] | None = None,
    ) -> Answer:
        """POST ``body``; the answer whatever its status, but a redirect; network failures and
        timeouts are :class:`DeliveryError` to retry."""
        self._check_literal_address(url)
        session = self._open()
        try:
            async with session.post(
                url, data=body, headers=headers, params=params, allow_redirects=False
            ) as response:
                if 300 <= response.status < 400:
                    raise status_error(response.status, where=self.where)
                read = bytearray()
                async for chunk in response.content.iter_chunked(1 << 16):
                    read += chunk
                    if len(read) > MAX_ANSWER_BYTES:
                        raise DeliveryError(f"{self.where} answered more than 16 MiB")
                return Answer(response.status, bytes(read))
        except (aiohttp.ClientError, TimeoutError) as e:
            reason = str(e) or type(e).__name__
            raise DeliveryError(f"{self.where} could not be reached: {reason}") from e

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
