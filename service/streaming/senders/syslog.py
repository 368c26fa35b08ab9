"""Syslog: RFC 5424 messages over TCP (``tcp://host:port``) or TLS (``tls://host:port``).

Both carry each message as an octet-counted frame, ``MSG-LEN SP SYSLOG-MSG`` (RFC 6587 §3.4.1
for TCP, RFC 5425 §4.3 for TLS), so a message may hold any byte, newlines included. The port
defaults to 514 for TCP and 6514 for TLS. TLS verifies the receiver's certificate against the
system's store, or the PEM bundle of the setting ``ca_pem``, and checks that it names the host
(TLS 1.2 at least). Messages are built by :mod:`.syslog_message`.

**Delivery is best effort, with a resend window.** Syslog has no acknowledgement: a batch counts
as delivered once it is written and the connection took it (``drain``). The connection is kept
across batches; a task reads it, so that the end of it (a receiver that restarts, an idle
timeout, a reset) is noticed between batches. The next ``send`` then connects again and first
sends again the most recent batches, up to :data:`RESEND_WINDOW_BYTES` (always the whole last
batch): what the receiver did not take before it went away comes again. A connection that
fails while a batch is written raises :class:`DeliveryError` (retried): the caller sends the
batch again. Receivers therefore
see duplicates, and drop them by the ``id`` in the structured data. What is still lost: a batch
the kernel accepted on a connection that dies silently when no later batch ever comes, and
messages older than the window.

Refusals that sending again will not cure raise ``DeliveryError(retry=False)``: settings that
are not valid (naming the setting), a destination the guard refuses, a certificate that does not
verify or does not name the host.
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from service.streaming.guard import AddressGuard
from service.streaming.senders.base import DeliveryError, Event, Target
from service.streaming.senders.syslog_message import MessageFormat

DEFAULT_PORTS = {"tcp": 514, "tls": 6514}
RESEND_WINDOW_BYTES = 1024 * 1024
TIMEOUT_SECONDS = 30.0
"""Longest wait to connect (TLS handshake included) and for a batch to be taken."""
CLOSE_SECONDS = 5.0
"""Longest wait for a connection to close cleanly (TLS close_notify) before it is cut."""


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """``tcp://host[:port]`` or ``tls://host[:port]``; :class:`ValueError` naming ``url``."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as e:
            raise ValueError(f"url: {e}") from e
        if parts.scheme not in DEFAULT_PORTS:
            raise ValueError("url: syslog destinations are tcp://host:port or tls://host:port")
        if not parts.hostname or parts.username or parts.password:
            raise ValueError("url: a host name, without user or password")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("url: nothing after host:port")
        return cls(parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme])


def tls_context(ca_pem: Any) -> ssl.SSLContext:
    """Certificates verified against ``ca_pem`` or the system's store, the host name checked."""
    if ca_pem not in (None, "") and not isinstance(ca_pem, str):
        raise ValueError("ca_pem: PEM text")
    try:
        context = ssl.create_default_context(cadata=ca_pem or None)
    except (ssl.SSLError, ValueError) as e:
        raise ValueError("ca_pem: not a PEM bundle of CA certificates") from e
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@dataclass(frozen=True)
class Options:
    endpoint: Endpoint
    format: MessageFormat
    tls: ssl.SSLContext | None

    @classmethod
    def of(cls, target: Target) -> Options:
        """The options of ``target``; :class:`ValueError` naming the first bad field (``url``,
        ``facility``, ``host``, ``app_name``, ``max_message_bytes``, ``ca_pem``)."""
        endpoint = Endpoint.parse(target.url)
        message_format = MessageFormat.from_settings(
            target.settings, default_host=socket.gethostname()
        )
        tls = tls_context(target.settings.get("ca_pem")) if endpoint.scheme == "tls" else None
        return cls(endpoint, message_format, tls)


def check_target(target: Target) -> None:
    """:class:`ValueError` (``"<field>: why"``) when the destination cannot work: for a 4xx."""
    Options.of(target)


def frame(message: bytes) -> bytes:
    """``MSG-LEN SP SYSLOG-MSG``: the length counts octets."""
    return b"%d %b" % (len(message), message)


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    lost: bool = False
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)

    async def usable(self) -> bool:
        """Not ended, once the loop took in what the receiver sent since (a few turns of it)."""
        sock = self.writer.get_extra_info("socket")
        for _ in range(8):
            fd = sock.fileno() if sock is not None else -1  # -1: the socket is closed
            if self.lost or fd < 0 or not select.select([fd], [], [], 0)[0]:
                break
            await asyncio.sleep(0)
        return not self.lost and not self.writer.is_closing()

    async def watch(self) -> None:
        """Syslog receivers say nothing: reading tells when the connection ends."""
        try:
            while await self.reader.read(4096):
                pass
        except OSError:
            pass  # a reset: recorded below, the next send connects again
        finally:
            self.lost = True


class SyslogSender:
    """The :class:`~.base.Sender` of syslog destinations (see the module's docstring)."""

    def __init__(self, target: Target, guard: AddressGuard) -> None:
        self._guard = guard
        self._options: Options | None = None
        self._problem = ""
        try:
            self._options = Options.of(target)
        except ValueError as e:
            self._problem = str(e)
        self._connection: _Connection | None = None
        self._window: deque[bytes] = deque()
        self._lock = asyncio.Lock()

    async def send(self, events: list[Event]) -> None:
        if self._options is None:
            raise DeliveryError(f"the syslog destination is not valid: {self._problem}",
                                retry=False)  # fmt: skip
        if not events:
            return
        options = self._options
        batch = b"".join(frame(options.format.encode(event)) for event in events)
        async with self._lock:
            connection, replay = await self._connected(options)
            try:
                connection.writer.write(replay + batch)
                await asyncio.wait_for(connection.writer.drain(), TIMEOUT_SECONDS)
            except (OSError, TimeoutError) as e:
                await self._drop()
                raise DeliveryError(
                    f"the connection to {_name(options)} failed while sending: "
                    f"{_reason(e)}; the batch will be sent again"
                ) from e
            self._remember(batch)

    async def close(self) -> None:
        async with self._lock:
            await self._drop()
            self._window.clear()

    async def _connected(self, options: Options) -> tuple[_Connection, bytes]:
        """The open connection, or a new one and the batches of the lost one to send again."""
        if self._connection is not None and await self._connection.usable():
            return self._connection, b""
        await self._drop()
        self._connection = await self._open(options)
        return self._connection, b"".join(self._window)

    async def _open(self, options: Options) -> _Connection:
        endpoint = options.endpoint
        addresses = await self._guard.resolve(endpoint.host, endpoint.port)
        failures = []
        for address in addresses:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(
                        address,
                        endpoint.port,
                        ssl=options.tls,
                        server_hostname=endpoint.host if options.tls else None,
                    ),
                    TIMEOUT_SECONDS,
                )
            except ssl.SSLCertVerificationError as e:
                raise DeliveryError(
                    f"{_name(options)} presented a certificate that was not accepted "
                    f"({e.verify_message}); check the receiver's certificate or ca_pem",
                    retry=False,
                ) from e
            except (OSError, TimeoutError) as e:
                failures.append(f"{address}: {_reason(e)}")
                continue
            connection = _Connection(reader, writer)
            connection.watcher = asyncio.create_task(connection.watch())
            return connection
        raise DeliveryError(f"cannot connect to {_name(options)} ({'; '.join(failures)})")

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if connection.watcher is not None:
            connection.watcher.cancel()
        connection.writer.close()
        try:
            await asyncio.wait_for(connection.writer.wait_closed(), CLOSE_SECONDS)
        except (OSError, TimeoutError):
            connection.writer.transport.abort()  # a lost connection: nothing left to say

    def _remember(self, batch: bytes) -> None:
        """Keep ``batch`` in the resend window, and older batches while the window has room."""
        self._window.append(batch)
        size = sum(len(kept) for kept in self._window)
        while len(self._window) > 1 and size > RESEND_WINDOW_BYTES:
            size -= len(self._window.popleft())


def _name(options: Options) -> str:
    endpoint = options.endpoint
    return f"{endpoint.scheme}://{endpoint.host}:{endpoint.port}"


def _reason(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return f"no progress in {TIMEOUT_SECONDS:.0f} s"
    return str(error) or type(error).__name__
