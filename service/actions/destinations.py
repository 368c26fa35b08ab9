"""Managing an account's streaming destinations: create, read, change, pause, resume, delete.

A destination names a kind (``webhook``, ``splunk_hec``, ``syslog``, ``elasticsearch``), its
address, settings and secrets, a format (``entry`` or ``ocsf``), a filter (categories, types and
a search text ``q``, checked here by parsing it) and where it starts: ``"now"``
(the log's head when it is created) or a position (a backfill from there). Its secrets are
encrypted with ``AUDITLOG_DESTINATION_KEY`` before they are stored and never shown again: reads
list which secrets are set. Every change is an ``audit`` entry of the account, its secrets
left out (those entries are exported and streamed themselves).
"""

from __future__ import annotations

import contextlib
import re
import secrets as random
import ssl
from datetime import UTC, datetime
from typing import Any, TypeGuard
from urllib.parse import urlsplit

from service.actions import audit_trail
from service.actions.keys import Principal
from service.errors import ServiceError, bad_request
from service.runtime import Runtime
from service.search.destinations import MAX_PER_ACCOUNT, DestinationStore, Version
from service.search.integrity_log import IntegrityLog
from service.search.search_text import compile_search_text, parse_search_text
from service.streaming.secrets import SecretsBox, SecretsKeyError
from service.streaming.senders.base import Target
from service.streaming.senders.guarded_http import destination_of
from service.vocabulary import CATEGORIES, TYPES
from service.zones import zone

KINDS: dict[str, dict[str, Any]] = {
    "webhook": {"schemes": ("https", "http"), "secrets": ("secret", "previous_secret"),
                "required": ("secret",), "settings": ()},
    "splunk_hec": {"schemes": ("https", "http"), "secrets": ("token",), "required": ("token",),
                   "settings": ("index", "source", "sourcetype", "host", "ack", "ack_timeout_s",
                                "timeout_s", "ca_pem")},
    "syslog": {"schemes": ("tcp", "tls"), "secrets": (), "required": (),
               "settings": ("facility", "app_name", "host", "ca_pem", "max_message_bytes")},
    "elasticsearch": {"schemes": ("https", "http"),
                      "secrets": ("api_key", "username", "password"), "required": (),
                      "settings": ("index", "timeout_s", "ca_pem")},
}  # fmt: skip
"""Each kind: its URL schemes, secret names (those required) and setting names."""
FORMATS = ("entry", "ocsf")
"""``entry``: the entry as ``/v1/entries`` returns it; ``ocsf``: an OCSF event
(:mod:`service.streaming.ocsf`)."""
FILTER_TZ = "UTC"
"""The timezone of dates in ``filter.q`` (``after:``, ``before:``): a destination has no request."""
DESTINATION_ID = re.compile(r"^dst_[0-9a-f]{24}\Z")
STATUSES = ("active", "failing", "paused", "disabled")
FIELDS = ("name", "kind", "url", "format", "settings", "secrets", "filter", "start")
SECONDS = {"timeout_s": 60, "ack_timeout_s": 600}
"""Settings that are seconds, and their largest value."""
MAX_TEXT = 2000


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def box(runtime: Runtime) -> SecretsBox:
    key = runtime.settings.destination_key
    if key is None:
        message = "this service has no AUDITLOG_DESTINATION_KEY to encrypt secrets with"
        raise ServiceError(503, "not_configured", message)
    try:
        return SecretsBox(str(key))
    except SecretsKeyError as e:
        raise ServiceError(503, "not_configured", str(e)) from e


def _text(body: dict[str, Any], name: str, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise bad_request(f"{name} must be a non-empty string of at most {MAX_TEXT} characters",
                          name)  # fmt: skip
    return value.strip()


def _url(kind: str, text: str) -> str:
    schemes = KINDS[kind]["schemes"]
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as e:
        raise bad_request(f"url is not a URL: {e}", "url") from e
    if parts.scheme not in schemes or not parts.hostname:
        raise bad_request(f"url of a {kind} destination is {' or '.join(schemes)}://host...",
                          "url")  # fmt: skip
    if parts.username or parts.password:
        raise bad_request("url must not carry credentials: give them as secrets", "url")
    try:
        str(parts.hostname).encode("idna")
    except UnicodeError as e:
        raise bad_request(f"url has a host name that cannot be looked up: {e}", "url") from e
    if kind == "syslog" and (port is None or parts.path not in ("", "/")):
        raise bad_request("url of a syslog destination is tcp://host:port or tls://host:port",
                          "url")  # fmt: skip
    return text


def _mapping(body: dict[str, Any], name: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    value = body.get(name, {})
    if not isinstance(value, dict):
        raise bad_request(f"{name} must be an object", name)
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        known = ", ".join(allowed) or "none"
        raise bad_request(f"{name} has unknown keys {unknown}: known are {known}", name)
    for key, item in value.items():
        if key in SECONDS:  # a number, fractions too: 1e308 is one, out of range
            if not (_number(item) and 1 <= item <= SECONDS[key]):
                raise bad_request(f"{name}.{key} must be a number of seconds from 1 to "
                                  f"{SECONDS[key]}", name)  # fmt: skip
        elif not isinstance(item, str | bool | int) or (
            isinstance(item, str) and len(item) > 10**5
        ):
            raise bad_request(f"{name}.{key} must be a string, an integer or a boolean", name)
        if key == "ca_pem" and not _pem_bundle(item):
            raise bad_request(f"{name}.ca_pem must be PEM certificates", name)
    return dict(value)


def _number(item: object) -> TypeGuard[int | float]:
    return isinstance(item, int | float) and not isinstance(item, bool)


def _pem_bundle(item: object) -> bool:
    try:
        ssl.create_default_context(cadata=str(item))
    except (ssl.SSLError, ValueError):
        return False
    return True


def _filter(body: dict[str, Any]) -> dict[str, Any]:
    value = body.get("filter", {})
    if not isinstance(value, dict) or set(value) - {"categories", "types", "q"}:
        raise bad_request('filter is {categories: [...], types: [...], q: "search text"}',
                          "filter")  # fmt: skip
    out: dict[str, Any] = {}
    for key, vocabulary in (("categories", CATEGORIES), ("types", TYPES)):
        items = value.get(key, [])
        if not isinstance(items, list) or any(i not in vocabulary for i in items):
            raise bad_request(f"filter.{key} must list some of {', '.join(vocabulary)}", "filter")
        if items:
            out[key] = sorted(set(items))
    text = value.get("q")
    if text is not None and not isinstance(text, str):
        raise bad_request("filter.q must be a search text, as q of GET /v1/entries", "filter.q")
    if text and text.strip():
        filter_query(text)
        out["q"] = text.strip()
    return out


def filter_query(text: str) -> dict[str, Any]:
    """The engine query of a destination's ``filter.q`` (the syntax of ``q`` in searches, dates
    in UTC); a 400 naming ``filter.q`` when it is not valid."""
    try:
        return compile_search_text(parse_search_text(text), zone(FILTER_TZ, "filter.q"))
    except ServiceError as e:
        if e.status != 400:
            raise
        raise bad_request(f"filter.q: {e.message}", "filter.q") from e


async def _start(
    runtime: Runtime, account_id: str, body: dict[str, Any], field: str = "start"
) -> int:
    start = body.get("start", "now")
    head = await IntegrityLog(runtime.es, runtime.names).latest_checkpoint(account_id)
    size = int(head["tree_size"]) if head else 0
    if start == "now":
        return size
    if isinstance(start, int) and not isinstance(start, bool) and 0 <= start <= size:
        return start
    raise bad_request(f'{field} must be "now" or a position from 0 to {size} (a backfill)', field)


def _check_kind(kind: str, url: str, settings: dict[str, Any]) -> None:
    """The kind's own checks of its settings (an index to write to, a syslog facility, a
    message size...)."""
    if kind == "elasticsearch" and not settings.get("index"):
        raise bad_request("settings.index is required: the index to write to", "settings")
    if kind == "syslog":
        from service.streaming.senders.syslog import check_target

        try:
            check_target(Target(kind, url, settings, {}))
        except ValueError as e:
            raise bad_request(f"settings: {e}", "settings") from e


def _check_pairs(secrets: dict[str, Any]) -> None:
    """Secrets that only go together: a user name and its password."""
    for one, other in (("username", "password"), ("password", "username")):
        if one in secrets and other not in secrets:
            raise bad_request(f"secrets.{other} is required with secrets.{one}", "secrets")


def public(destination: dict[str, Any]) -> dict[str, Any]:
    """The destination as the API shows it: secrets never, only their names."""
    shown = {k: v for k, v in destination.items() if k != "secrets"}
    shown["secrets_set"] = destination.get("secret_names", [])
    shown.pop("secret_names", None)
    return shown


async def audit(runtime: Runtime, actor: dict[str, str], account_id: str, action: str,
                destination: dict[str, Any], message: str) -> None:  # fmt: skip
    """The change's ``audit`` entry, no secret in it. The change is made whether or not the
    entry could be written (a failure is logged and counted, as for key changes)."""
    metadata = {"target_type": "destination", "target_id": destination["id"],
                "target_name": destination.get("name", ""), "kind": destination.get("kind"),
                "url": destination_of(str(destination.get("url"))),
                "status": destination.get("status"),
                "position": destination.get("position")}  # fmt: skip
    with contextlib.suppress(audit_trail.AuditNotRecorded):
        await audit_trail.record(runtime.ingest, account_id, actor, action, message, metadata)


async def create_destination(
    runtime: Runtime, principal: Principal, account_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    unknown = sorted(set(body) - set(FIELDS) - {"account_id"})
    if unknown:
        raise bad_request(f"unknown fields {unknown}", unknown[0])
    kind = body.get("kind")
    if kind not in KINDS:
        raise bad_request(f"kind must be one of {', '.join(KINDS)}", "kind")
    spec = KINDS[kind]
    name = _text(body, "name")
    url = _url(kind, str(_text(body, "url")))
    fmt = body.get("format", "entry")
    if fmt not in FORMATS:
        raise bad_request(f"format must be one of {', '.join(FORMATS)}", "format")
    settings = _mapping(body, "settings", spec["settings"])
    _check_kind(kind, url, settings)
    given = _mapping(body, "secrets", spec["secrets"])
    missing = [s for s in spec["required"] if not given.get(s)]
    if missing:
        raise bad_request(f"secrets.{missing[0]} is required for a {kind} destination", "secrets")
    _check_pairs({k: v for k, v in given.items() if v})
    store = DestinationStore(runtime.es, runtime.names)
    if len(await store.of_account(account_id)) >= MAX_PER_ACCOUNT:
        raise ServiceError(
            409, "too_many", f"an account has at most {MAX_PER_ACCOUNT} destinations"
        )
    sealer = box(runtime)
    destination_id = f"dst_{random.token_hex(12)}"
    document = {
        "id": destination_id, "account_id": account_id, "name": name, "kind": kind, "url": url,
        "format": fmt, "settings": settings, "filter": _filter(body),
        "secrets": sealer.seal(destination_id, {k: str(v) for k, v in given.items()}),
        "secret_names": sorted(k for k, v in given.items() if v),
        "status": "active", "status_reason": None,
        "position": await _start(runtime, account_id, body),
        "created_at": now_text(), "updated_at": now_text(), "paused_at": None,
        "health": {"delivered": 0, "failed": 0},
    }  # fmt: skip
    await store.create(document)
    await audit(runtime, principal.actor(), account_id, "destination.created", document,
                 f"Created the {kind} destination '{name}' ({destination_of(url)})")  # fmt: skip
    return public(document)


async def own_destination(runtime: Runtime, account_id: str, destination_id: str) -> dict[str, Any]:
    return (await _own_versioned(runtime, account_id, destination_id))[0]


async def _own_versioned(
    runtime: Runtime, account_id: str, destination_id: str
) -> tuple[dict[str, Any], Version]:
    if not DESTINATION_ID.match(destination_id):
        raise ServiceError(404, "not_found", "no such destination")
    found = await DestinationStore(runtime.es, runtime.names).get_versioned(destination_id)
    if found is None or found[0]["account_id"] != account_id:
        raise ServiceError(404, "not_found", "no such destination")
    return found


CHANGE_ATTEMPTS = 5
"""A change is worked out again from the stored destination this many times, at most, while
deliveries (or other changes) write it meanwhile."""


async def change_destination(
    runtime: Runtime, principal: Principal, account_id: str, destination_id: str,
    body: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """Change name, url, settings (merged into those set), secrets (merged: a rotation keeps
    the old as ``previous_secret`` when asked), filter (replaced), status (``active`` resumes,
    ``paused`` pauses) or position (rewind for a backfill). The change is worked out from the
    destination as stored and written only if it is still so (else worked out again): a
    delivery's position, or another change, written meanwhile is kept."""
    unknown = sorted(set(body) - {"name", "url", "settings", "secrets", "filter", "status",
                                  "position"})  # fmt: skip
    if unknown:
        raise bad_request(f"unknown or unchangeable fields {unknown}", unknown[0])
    store = DestinationStore(runtime.es, runtime.names)
    for _ in range(CHANGE_ATTEMPTS):
        current, version = await _own_versioned(runtime, account_id, destination_id)
        changes = await _changes(runtime, account_id, destination_id, current, body)
        changes["updated_at"] = now_text()
        if await store.replace_if({**current, **changes}, version):
            break
    else:
        raise ServiceError(409, "conflict", "the destination kept changing while this change "
                           "was made; retry")  # fmt: skip
    changed = {**current, **changes}
    action = {"active": "destination.resumed", "paused": "destination.paused"}.get(
        str(body.get("status")), "destination.changed"
    )
    said = sorted(set(body) - {"secrets"}) + (["secrets"] if "secrets" in body else [])
    await audit(runtime, principal.actor(), account_id, action, changed,
                 f"Changed the destination '{changed['name']}': {', '.join(said)}")  # fmt: skip
    return public(changed)


async def _changes(
    runtime: Runtime, account_id: str, destination_id: str, current: dict[str, Any],
    body: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """The fields ``body`` changes, worked out from ``current`` (checked, secrets sealed)."""
    spec, changes = KINDS[current["kind"]], dict[str, Any]()
    if "name" in body:
        changes["name"] = _text(body, "name")
    if "url" in body:
        changes["url"] = _url(current["kind"], str(_text(body, "url")))
    if "settings" in body or "url" in body:
        given = _mapping(body, "settings", spec["settings"])
        merged_settings = {**current["settings"], **given}  # merged; "" removes one
        changes["settings"] = {k: v for k, v in merged_settings.items() if v != ""}
        _check_kind(current["kind"], changes.get("url", current["url"]), changes["settings"])
    if "filter" in body:
        changes["filter"] = _filter(body)
    if "secrets" in body:
        sealer = box(runtime)
        given = _mapping(body, "secrets", spec["secrets"])
        try:
            stored = sealer.open(destination_id, current["secrets"])
        except SecretsKeyError:  # AUDITLOG_DESTINATION_KEY changed: every secret is given anew
            stored = {}
            if any(not given.get(name) for name in spec["required"]):
                raise bad_request("the stored secrets cannot be read with the current "
                                  "AUDITLOG_DESTINATION_KEY: give every secret again",
                                  "secrets") from None  # fmt: skip
        merged = {**stored, **given}
        merged = {k: str(v) for k, v in merged.items() if v not in ("", None)}
        missing = [s for s in spec["required"] if s not in merged]
        if missing:  # a secret is replaced, never removed, where the kind needs it
            raise bad_request(f"secrets.{missing[0]} is required for a {current['kind']} "
                              "destination: give a new value to replace it", "secrets")  # fmt: skip
        _check_pairs(merged)
        changes["secrets"] = sealer.seal(destination_id, merged)
        changes["secret_names"] = sorted(merged)
    if "status" in body:
        if body["status"] not in ("active", "paused"):
            raise bad_request('status may be set to "active" (resume) or "paused"', "status")
        resumed = body["status"] == "active"
        changes.update(status=body["status"],
                       status_reason=None if resumed else "paused by a person",
                       paused_at=None if resumed else now_text())  # fmt: skip
        if resumed:  # a fresh start: past failures neither pause it again nor delay it
            health = dict(current.get("health") or {})
            health.update(failing_since=None, failures=0, retry_at=None)
            changes["health"] = health
    if "position" in body:
        position = body["position"]
        changes["position"] = await _start(runtime, account_id, {"start": position}, "position")
    return changes


async def delete_destination(
    runtime: Runtime, principal: Principal, account_id: str, destination_id: str
) -> None:
    current = await own_destination(runtime, account_id, destination_id)
    await DestinationStore(runtime.es, runtime.names).delete(destination_id)
    await audit(runtime, principal.actor(), account_id, "destination.deleted", current,
                 f"Deleted the {current['kind']} destination '{current['name']}'")  # fmt: skip


async def list_destinations(runtime: Runtime, account_id: str) -> list[dict[str, Any]]:
    found = await DestinationStore(runtime.es, runtime.names).of_account(account_id)
    return [public(d) for d in found]
