"""Entries as OCSF events (Open Cybersecurity Schema Framework), schema version 1.5.0.

A destination whose ``format`` is ``ocsf`` receives each entry as one OCSF event; checkpoint
events keep their own form. The class is chosen by the entry (``docs/ocsf.md`` has every field):

=========================================================  ========================  =============
entry                                                      class (``class_uid``)     activity
=========================================================  ========================  =============
``api``                                                    API Activity (6003)       method
``webhook``                                                HTTP Activity (4002)      method
``audit``, action ``auth.login*``, ``auth.logout*``        Authentication (3002)     Logon, Logoff
``audit`` of a user or a key: target_type ``member``,      Account Change (3001)     verb
``user``, ``invitation``, ``api_key``, or an action
``members.*``, ``users.*``, ``invitations.*``, ``keys.*``
any other ``audit`` (settings, destinations, account...)   Entity Management (3004)  verb
``credits``, ``ai``, ``signal``, ``integration``;          Base Event (0)            99 Other
an entry marked ``missing``
=========================================================  ========================  =============

*method*: the HTTP method of the metadata (a webhook delivery is a POST unless it says
otherwise). *verb*: the action's last word (``created``, ``updated``, ``revoked``...), 99
``Other`` with the action as ``activity_name`` when the class has no such activity.

Every event has ``time`` (the entry's timestamp, ms since the epoch), ``metadata`` (``version``
1.5.0, ``product`` auditlog, ``uid`` = the entry id, ``tenant_uid`` = the account, ``sequence`` =
the position, ``log_name`` = the category, ``event_code`` = the action), ``severity_id`` from the
type (notice 1 Informational, warning 3 Medium, error 4 High), ``status_id`` (2 Failure for a
status code >= 400, an error, a ``failed`` status or action, or an ``error`` entry; else 1
Success), ``message``, and the entry whole, as the feed gives it, in ``unmapped.entry``.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import urlsplit

OCSF_VERSION = "1.5.0"
PRODUCT = "auditlog"
BASE_EVENT, HTTP_ACTIVITY, API_ACTIVITY = 0, 4002, 6003
ACCOUNT_CHANGE, AUTHENTICATION, ENTITY_MANAGEMENT = 3001, 3002, 3004
CLASS_NAMES = {BASE_EVENT: "Base Event", ACCOUNT_CHANGE: "Account Change",
               AUTHENTICATION: "Authentication", ENTITY_MANAGEMENT: "Entity Management",
               HTTP_ACTIVITY: "HTTP Activity", API_ACTIVITY: "API Activity"}  # fmt: skip
CATEGORY_NAMES = {0: "Uncategorized", 3: "Identity & Access Management", 4: "Network Activity",
                  6: "Application Activity"}  # fmt: skip
OTHER, UNKNOWN = 99, 0
ACTIVITIES: dict[int, dict[int, str]] = {
    BASE_EVENT: {},
    API_ACTIVITY: {1: "Create", 2: "Read", 3: "Update", 4: "Delete"},
    HTTP_ACTIVITY: {1: "Connect", 2: "Delete", 3: "Get", 4: "Head", 5: "Options", 6: "Post",
                    7: "Put", 8: "Trace"},
    AUTHENTICATION: {1: "Logon", 2: "Logoff"},
    ACCOUNT_CHANGE: {1: "Create", 2: "Enable", 3: "Password Change", 4: "Password Reset",
                     5: "Disable", 6: "Delete", 7: "Attach Policy", 8: "Detach Policy", 9: "Lock",
                     10: "MFA Factor Enable", 11: "MFA Factor Disable", 12: "Unlock"},
    ENTITY_MANAGEMENT: {1: "Create", 2: "Read", 3: "Update", 4: "Delete", 5: "Move", 6: "Enroll",
                        7: "Unenroll", 8: "Enable", 9: "Disable", 10: "Activate",
                        11: "Deactivate", 12: "Suspend", 13: "Resume"},
}  # fmt: skip
"""Each class's ``activity_id`` → its name (0 Unknown and 99 Other are every class's)."""
API_METHODS = {"POST": 1, "GET": 2, "HEAD": 2, "PUT": 3, "PATCH": 3, "DELETE": 4}
HTTP_METHODS = {"CONNECT": 1, "DELETE": 2, "GET": 3, "HEAD": 4, "OPTIONS": 5, "POST": 6, "PUT": 7,
                "TRACE": 8}  # fmt: skip
ACCOUNT_VERBS = {"created": 1, "added": 1, "invited": 1, "enabled": 2, "activated": 2,
                 "password_changed": 3, "password_reset": 4, "disabled": 5, "deactivated": 5,
                 "suspended": 5, "deleted": 6, "removed": 6, "revoked": 6, "policy_attached": 7,
                 "policy_detached": 8, "locked": 9, "mfa_enabled": 10, "mfa_disabled": 11,
                 "unlocked": 12}  # fmt: skip
ENTITY_VERBS = {"created": 1, "added": 1, "read": 2, "viewed": 2, "updated": 3, "changed": 3,
                "edited": 3, "reconnected": 3, "deleted": 4, "removed": 4, "moved": 5,
                "renamed": 5, "enrolled": 6, "unenrolled": 7, "enabled": 8, "disabled": 9,
                "activated": 10, "deactivated": 11, "paused": 12, "suspended": 12,
                "resumed": 13}  # fmt: skip
LOGON, LOGOFF = ("login", "signin", "sign_in", "logon"), ("logout", "signout", "sign_out", "logoff")
USER_TARGETS = frozenset({"member", "user", "invitation", "api_key"})
USER_ACTIONS = frozenset({"members", "users", "invitations", "keys"})
SEVERITIES = {"notice": (1, "Informational"), "warning": (3, "Medium"), "error": (4, "High")}
SUCCESS, FAILURE = 1, 2
FAILED_WORDS = frozenset({"failed", "failure", "error", "rejected"})
EMAIL = re.compile(r"^[a-zA-Z0-9!#$%&'*+-/=?^_`{|}~.]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9-.]+$")
"""OCSF's ``email_t``: an address it refuses stays in ``unmapped`` only."""
USER_TYPES = {"user": (1, "User"), "api_key": (99, "API Key")}
IP_MAX = 40
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)


@functools.cache
def _release() -> str:
    try:
        return version("auditlog")
    except PackageNotFoundError:
        return "unknown"


def product() -> dict[str, str]:
    """``metadata.product``: the service (a new object each time: events are changed apart)."""
    return {"name": PRODUCT, "vendor_name": PRODUCT, "version": _release()}


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _ip(value: object) -> str | None:
    """An address in OCSF's ``ip_t`` (at most 40 characters), or ``None``."""
    if not isinstance(value, str):
        return None
    try:
        address = str(ipaddress.ip_address(value))
    except ValueError:
        return None
    return address if len(address) <= IP_MAX else None


def epoch_ms(stamp: str) -> int:
    """Milliseconds since the epoch of an RFC 3339 timestamp (OCSF's ``timestamp_t``)."""
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // ONE_MS


def choose_class(entry: dict[str, Any]) -> int:
    """The OCSF class of ``entry`` (the table of the module's docstring)."""
    category = entry.get("category")
    if entry.get("missing"):
        return BASE_EVENT
    if category == "api":
        return API_ACTIVITY
    if category == "webhook":
        return HTTP_ACTIVITY
    if category != "audit":
        return BASE_EVENT
    words = str(entry.get("action") or "").lower().split(".")
    if words[0] == "auth" and len(words) > 1 and words[1] in LOGON + LOGOFF:
        return AUTHENTICATION
    if (entry.get("metadata") or {}).get("target_type") in USER_TARGETS or words[0] in USER_ACTIONS:
        return ACCOUNT_CHANGE
    return ENTITY_MANAGEMENT


def _activity(class_uid: int, entry: dict[str, Any]) -> int:
    metadata = entry.get("metadata") or {}
    action = str(entry.get("action") or "").lower()
    verb = action.rsplit(".", 1)[-1]
    method = str(metadata.get("method") or "").upper()
    if class_uid == API_ACTIVITY:
        return API_METHODS.get(method, OTHER if method else UNKNOWN)
    if class_uid == HTTP_ACTIVITY:
        return HTTP_METHODS.get(method or "POST", OTHER)
    if class_uid == AUTHENTICATION:
        second = action.split(".")[1]
        return 1 if second in LOGON else 2
    if class_uid == ACCOUNT_CHANGE:
        return ACCOUNT_VERBS.get(verb, OTHER)
    if class_uid == ENTITY_MANAGEMENT:
        return ENTITY_VERBS.get(verb, OTHER)
    return OTHER


def _status(entry: dict[str, Any]) -> int:
    metadata = entry.get("metadata") or {}
    code = _int(metadata.get("status_code"))
    if code is not None:
        return FAILURE if code >= 400 else SUCCESS
    words = set(str(entry.get("action") or "").lower().split("."))
    status = str(metadata.get("status") or "").lower()
    failed = metadata.get("error") or status in FAILED_WORDS or words & FAILED_WORDS
    return FAILURE if failed or entry.get("type") == "error" else SUCCESS


def _user(uid: object, name: object, email: object = None, kind: object = None) -> dict[str, Any]:
    """An OCSF ``user``: at least a ``uid`` or a ``name``."""
    user: dict[str, Any] = {}
    if _text(uid):
        user["uid"] = uid
    if _text(name):
        user["name"] = name
    if isinstance(email, str) and EMAIL.match(email):
        user["email_addr"] = email
        user.setdefault("name", email)
    type_id, type_name = USER_TYPES.get(str(kind), (OTHER, str(kind))) if kind else (UNKNOWN, "")
    user.update(type_id=type_id, **({"type": type_name} if type_name else {}))
    if "uid" not in user and "name" not in user:
        user["name"] = "unknown"
    return user


def _actor(entry: dict[str, Any]) -> dict[str, Any]:
    actor = entry.get("actor") or {}
    if actor.get("type") == "system":
        return {"app_uid": str(actor.get("id") or "unknown"),
                **({"app_name": actor["name"]} if _text(actor.get("name")) else {})}  # fmt: skip
    user = _user(actor.get("id"), actor.get("name"), actor.get("email"), actor.get("type"))
    return {"user": user}


def _endpoint(metadata: dict[str, Any]) -> dict[str, Any] | None:
    ip = _ip(metadata.get("ip"))
    return {"ip": ip} if ip else None


def _url(text: str) -> dict[str, Any]:
    url: dict[str, Any] = {"url_string": text}
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return url
    if parts.scheme:
        url["scheme"] = parts.scheme
    if parts.hostname:
        url["hostname"] = parts.hostname
    if port is not None:
        url["port"] = port
    if parts.path:
        url["path"] = parts.path
    if parts.query:
        url["query_string"] = parts.query
    return url


def _api_fields(entry: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    method, path = _text(metadata.get("method")), _text(metadata.get("path"))
    operation = f"{method} {path}" if method and path else str(entry.get("action") or "unknown")
    fields: dict[str, Any] = {
        "actor": _actor(entry),
        "api": {"operation": operation},
        "src_endpoint": _endpoint(metadata) or {"name": "unknown"},
    }
    request: dict[str, Any] = {}
    if method and method.upper() in HTTP_METHODS:
        request["http_method"] = method.upper()
    if path:
        request["url"] = {"path": path}
    if request:
        fields["http_request"] = request
    code = _int(metadata.get("status_code"))
    if code is not None:
        fields["http_response"] = {"code": code}
    return fields


def _http_fields(metadata: dict[str, Any]) -> dict[str, Any]:
    method = str(metadata.get("method") or "POST").upper()
    request: dict[str, Any] = {"http_method": method} if method in HTTP_METHODS else {}
    url = _text(metadata.get("url"))
    if url:
        request["url"] = _url(url)
    fields: dict[str, Any] = {"http_request": request}
    code, latency = _int(metadata.get("status_code")), _int(metadata.get("duration_ms"))
    if code is not None:
        response: dict[str, Any] = {"code": code}
        if latency is not None and latency >= 0:
            response["latency"] = latency
        fields["http_response"] = response
    host = fields["http_request"].get("url", {}).get("hostname")
    if host:
        ip = _ip(host.strip("[]"))
        fields["dst_endpoint"] = {"ip": ip} if ip else {"hostname": host}
    return fields


def _iam_fields(class_uid: int, entry: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {"actor": _actor(entry)}
    endpoint = _endpoint(metadata)
    if endpoint:
        fields["src_endpoint"] = endpoint
    target_id, target_name = metadata.get("target_id"), metadata.get("target_name")
    target_type = _text(metadata.get("target_type"))
    if class_uid == AUTHENTICATION:
        actor = entry.get("actor") or {}
        fields["user"] = _user(actor.get("id"), actor.get("name"), actor.get("email"),
                               actor.get("type"))  # fmt: skip
        fields["service"] = {"uid": str(entry.get("account_id") or "unknown")}
    elif class_uid == ACCOUNT_CHANGE:
        kind = "api_key" if target_type == "api_key" else "user"
        fields["user"] = _user(target_id, target_name, target_name, kind)
    else:
        subject = str(entry.get("action") or "unknown").rsplit(".", 1)[0]
        entity: dict[str, Any] = {"type": target_type or subject, "type_id": OTHER}
        if _text(target_id):
            entity["uid"] = target_id
        entity["name"] = target_name if _text(target_name) else (target_type or subject)
        fields["entity"] = entity
    return fields


def _class_fields(class_uid: int, entry: dict[str, Any]) -> dict[str, Any]:
    metadata = entry.get("metadata") or {}
    if class_uid == API_ACTIVITY:
        return _api_fields(entry, metadata)
    if class_uid == HTTP_ACTIVITY:
        return _http_fields(metadata)
    if class_uid in (ACCOUNT_CHANGE, AUTHENTICATION, ENTITY_MANAGEMENT):
        return _iam_fields(class_uid, entry, metadata)
    return {}


def to_ocsf(entry: dict[str, Any]) -> dict[str, Any]:
    """The OCSF event of one entry as the feed gives it (with ``position`` and ``account_id``;
    a ``missing`` entry too)."""
    class_uid = choose_class(entry)
    activity_id = _activity(class_uid, entry)
    action = str(entry.get("action") or "")
    if activity_id in ACTIVITIES[class_uid]:
        activity_name = ACTIVITIES[class_uid][activity_id]
    else:
        activity_name = (action or "Other") if activity_id == OTHER else "Unknown"
    severity_id, severity = SEVERITIES.get(str(entry.get("type")), (UNKNOWN, "Unknown"))
    status_id = _status(entry)
    metadata = entry.get("metadata") or {}
    event: dict[str, Any] = {
        "class_uid": class_uid, "class_name": CLASS_NAMES[class_uid],
        "category_uid": class_uid // 1000,
        "category_name": CATEGORY_NAMES[class_uid // 1000],
        "activity_id": activity_id, "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": f"{CLASS_NAMES[class_uid]}: {activity_name}",
        "severity_id": severity_id, "severity": severity,
        "status_id": status_id, "status": "Success" if status_id == SUCCESS else "Failure",
        "time": epoch_ms(str(entry["timestamp"])),
        "message": str(entry.get("message") or ""),
        "metadata": _metadata(entry),
    }  # fmt: skip
    code = _int(metadata.get("status_code"))
    if code is not None:
        event["status_code"] = str(code)
    if _text(metadata.get("error")):
        event["status_detail"] = metadata["error"]
    duration = _int(metadata.get("duration_ms"))
    if duration is not None and duration >= 0:
        event["duration"] = duration
    event.update(_class_fields(class_uid, entry))
    event["unmapped"] = {"entry": entry}
    return event


def _metadata(entry: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {"version": OCSF_VERSION, "product": product(), "uid": str(entry["id"])}
    if _text(entry.get("account_id")):
        found["tenant_uid"] = entry["account_id"]
    position = _int(entry.get("position"))
    if position is not None:
        found["sequence"] = position
    if _text(entry.get("category")):
        found["log_name"] = entry["category"]
    if _text(entry.get("action")):
        found["event_code"] = entry["action"]
    return found
