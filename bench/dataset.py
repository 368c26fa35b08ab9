"""The benchmark's entries: deterministic, realistic in size and shape, fast to generate.

Three accounts: ``acme`` holds ``N`` entries (so its exports reach a million rows), ``globex`` and
``initech`` ``N/40`` each. Each account's entries are spread evenly over the ``SPAN_DAYS`` before
``end`` with a random offset inside each slot, so timestamps are unique and increasing within an
account: the ``k`` newest entries are exactly those from the ``k``-th newest timestamp on.
``integration`` entries occur only in the last 29 days (older ones would already be expired).

Messages are 40-200 characters; metadata carries the category's known keys with their types and,
for some categories, an unknown key that exports put in ``metadata_other``. The same ``seed``,
``count`` and ``end`` always give the same entries.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

SPAN_DAYS = 180
INTEGRATION_DAYS = 29
Entry = dict[str, Any]


@dataclass(frozen=True)
class BenchAccount:
    id: str
    name: str
    timezone: str
    share: float
    """Entries relative to ``N``."""
    members: tuple[tuple[str, str], ...]


ACCOUNTS = (
    BenchAccount("acme", "Acme Corp", "Europe/Paris", 1.0, (
        ("u_101", "Jane Doe"), ("u_102", "Camille Martin"), ("u_103", "Thomas Bernard"),
        ("u_104", "Lea Rousseau"))),
    BenchAccount("globex", "Globex", "America/New_York", 1 / 40, (
        ("u_201", "Sarah Chen"), ("u_202", "Michael Brooks"))),
    BenchAccount("initech", "Initech", "UTC", 1 / 40, (
        ("u_301", "Peter Gibbons"), ("u_302", "Joanna Rivera"), ("u_303", "Samir Haddad"))),
)  # fmt: skip
MAIN_ACCOUNT = ACCOUNTS[0]

CATEGORY_WEIGHTS = {"api": 30, "webhook": 18, "signal": 15, "credits": 12, "ai": 10,
                    "audit": 6, "integration": 9}  # fmt: skip
SIGNALS = ("Competitor mentions", "Hiring posts in fintech", "Funding announcements",
           "Churn risk: customer complaints", "New VP Sales hires")  # fmt: skip
AGENTS = (("Lead qualifier", "gpt-4o-mini"), ("Post summarizer", "claude-sonnet-4"),
          ("Outreach drafter", "gpt-4o"))  # fmt: skip
API_KEYS = (("key_7f3a9c21", "Zapier production"), ("key_0b44e1d9", "Data warehouse sync"))
API_PATHS = ("/v2/signals", "/v2/signals/sig_4e1f/runs", "/v2/contacts", "/v2/credits/balance",
             "/v2/ai/agents/agt_91c2/runs", "/v2/webhooks", "/v2/posts/search")  # fmt: skip
CONTACTS = (("Marie Dubois", "Northwind Analytics"), ("Daniel Okafor", "Brightpath Capital"),
            ("Aisha Rahman", "Lumen Payments"), ("Lukas Becker", "Fjord Logistics"),
            ("Sofia Rossi", "Verde Foods"), ("Hiroshi Tanaka", "Kumo Robotics"))  # fmt: skip
WEBHOOK_ERRORS = ("connection timeout after 10 s", "HTTP 502 Bad Gateway", "HTTP 500 Internal "
                  "Server Error", "TLS handshake failed: certificate expired")  # fmt: skip
SCHEDULER = {"type": "system", "id": "scheduler", "name": "Scheduler"}
DISPATCHER = {"type": "system", "id": "webhook-dispatcher", "name": "Webhook dispatcher"}
CRM_SYNC = {"type": "system", "id": "crm-sync", "name": "CRM sync"}
BILLING = {"type": "system", "id": "billing", "name": "Billing"}


def entry_counts(n: int) -> dict[str, int]:
    return {a.id: max(1, round(n * a.share)) for a in ACCOUNTS}


def format_utc(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


class _Story:
    """One account's generator: every draw comes from one ``random.Random``."""

    def __init__(self, account: BenchAccount, seed: int) -> None:
        self.account, self.rng = account, random.Random(f"{seed}:{account.id}")
        self.domain = f"{account.id}.test"
        self.balance = 50_000

    def _user(self) -> dict[str, str]:
        uid, name = self.rng.choice(self.account.members)
        email = f"{name.lower().replace(' ', '.')}@{self.domain}"
        return {"type": "user", "id": uid, "name": name, "email": email}

    def _hex(self, prefix: str) -> str:
        return f"{prefix}_{self.rng.getrandbits(32):08x}"

    def api(self) -> tuple[str, dict[str, str], str, str, dict[str, Any]]:
        rng = self.rng
        key_id, key_name = rng.choice(API_KEYS)
        method = rng.choice(("GET", "GET", "GET", "POST", "PATCH", "DELETE"))
        path = rng.choice(API_PATHS)
        status = rng.choices((200, 201, 400, 401, 404, 429, 500), (70, 10, 5, 3, 5, 4, 3))[0]
        took = rng.randint(8, 900)
        kind = "notice" if status < 400 else "warning" if status < 500 else "error"
        message = f"{method} {path} returned {status} in {took} ms"
        if status == 429:
            message += f"; rate limit exceeded for key '{key_name}'"
        ip = f"203.0.113.{rng.randint(2, 250)}"
        metadata: dict[str, Any] = {"method": method, "path": path, "status_code": status,
                                    "duration_ms": took, "ip": ip,
                                    "api_key_id": key_id}  # fmt: skip
        if rng.random() < 0.5:
            metadata["request_id"] = self._hex("req")
        actor = {"type": "api_key", "id": key_id, "name": key_name}
        return kind, actor, "api.request", message, metadata

    def webhook(self) -> tuple[str, dict[str, str], str, str, dict[str, Any]]:
        rng = self.rng
        url = f"https://hooks.{self.domain}/{rng.choice(('linkedin-signals', 'ai-agent', 'crm'))}"
        event = rng.choice(("signal.post.matched", "ai.run.completed"))
        attempt = rng.choices((1, 2, 3), (85, 10, 5))[0]
        took = rng.randint(40, 4000)
        metadata: dict[str, Any] = {"webhook_id": self._hex("wh"), "url": url, "event": event,
                                    "attempt": attempt, "duration_ms": took}  # fmt: skip
        if rng.random() < 0.12:
            error = rng.choice(WEBHOOK_ERRORS)
            metadata.update(status_code=502 if "502" in error else 500, error=error)
            message = f"POST {url} failed ({error}) on attempt {attempt} of 3"
            kind, action = ("error" if attempt == 3 else "warning"), "webhook.delivery.failed"
        else:
            metadata["status_code"] = 200
            message = f"Delivered {event} to {url} in {took} ms (attempt {attempt})"
            kind, action = "notice", "webhook.delivery.succeeded"
        metadata["trace_id"] = self._hex("tr")
        return kind, DISPATCHER, action, message, metadata

    def signal(self) -> tuple[str, dict[str, str], str, str, dict[str, Any]]:
        rng = self.rng
        name = rng.choice(SIGNALS)
        processed, matched = rng.randint(5, 400), rng.randint(0, 12)
        contact = rng.choice(CONTACTS)[0]
        metadata = {"signal_id": self._hex("sig"), "signal_name": name, "run_id": self._hex("run"),
                    "processed": processed, "post_urn": f"urn:li:activity:{rng.getrandbits(60)}",
                    "contact_name": contact}  # fmt: skip
        outcome = rng.random()
        if outcome < 0.9:
            message = f"Signal '{name}' processed {processed} posts, {matched} matched"
            return "notice", SCHEDULER, "signal.run.completed", message, metadata
        if outcome < 0.96:
            message = (f"Signal '{name}' stopped after {processed} posts: LinkedIn rate limit "
                       "reached; the next run picks up the rest")  # fmt: skip
            return "warning", SCHEDULER, "signal.run.partial", message, metadata
        message = f"Signal '{name}' run failed: LinkedIn session expired; reconnect LinkedIn"
        return "error", self._user(), "signal.run.failed", message, metadata

    def credits(self) -> tuple[str, dict[str, str], str, str, dict[str, Any]]:
        rng = self.rng
        used = rng.choice((1, 1, 2, 3, 5))
        self.balance = self.balance - used if self.balance > 1000 else 50_000
        name = rng.choice(SIGNALS)
        urn = f"urn:li:activity:{rng.getrandbits(60)}"
        message = f"Used {used} credits for signal '{name}' on post {urn}; balance {self.balance:,}"
        metadata = {"credits_used": used, "credits_balance": self.balance, "signal_name": name,
                    "post_urn": urn}  # fmt: skip
        kind = "warning" if self.balance < 2000 else "notice"
        return kind, BILLING, "credits.consumed", message, metadata

    def ai(self) -> tuple[str, dict[str, str], str, str, dict[str, Any]]:
        rng = self.rng
        name, model = rng.choice(AGENTS)
        tokens_in, tokens_out = rng.randint(300, 12_000), rng.randint(50, 2_000)
        took = rng.randint(800, 120_000)
        failed = rng.random() < 0.07
        run_id = self._hex("run")
        metadata = {"agent_id": self._hex("agt"), "agent_name": name, "run_id": run_id,
                    "status": "failed" if failed else "completed", "duration_ms": took,
                    "model": model, "tokens_in": tokens_in, "tokens_out": tokens_out,
                    "credits_used": round(tokens_in / 4000, 2)}  # fmt: skip
        if failed:
            message = f"AI Agent '{name}' run {run_id} failed: model timeout after {took // 1000} s"
            return "error", SCHEDULER, "ai.run.failed", message, metadata
        message = (f"AI Agent '{name}' completed run {run_id} in {took / 1000:.1f} s with {model} "
                   f"({tokens_in:,} tokens in, {tokens_out:,} out)")  # fmt: skip
        return "notice", SCHEDULER, "ai.run.completed", message, metadata

    def audit(self) -> tuple[str, dict[str, str], str, str, dict[str, Any]]:
        rng = self.rng
        actor = self._user()
        name = rng.choice(SIGNALS)
        change = rng.choice(("schedule", "keywords", "audience filters", "daily credit cap"))
        message = f"{actor['name']} ({actor['email']}) changed the {change} of signal '{name}'"
        ip = f"198.51.100.{rng.randint(2, 250)}"
        metadata = {"target_type": "signal", "target_id": self._hex("sig"), "target_name": name,
                    "ip": ip}  # fmt: skip
        return "notice", actor, "settings.signal.updated", message, metadata

    def integration(self) -> tuple[str, dict[str, str], str, str, dict[str, Any]]:
        rng = self.rng
        provider = rng.choice(("hubspot", "attio"))
        label = "HubSpot" if provider == "hubspot" else "Attio"
        contact, company = rng.choice(CONTACTS)
        obj, operation = rng.choice((("contact", "update"), ("company", "create"),
                                     ("contact", "create"), ("deal", "update")))  # fmt: skip
        failed = rng.random() < 0.08
        metadata = {"provider": provider, "object": obj, "operation": operation,
                    "record_id": str(rng.getrandbits(40)), "contact_name": contact,
                    "status": "failed" if failed else "success"}  # fmt: skip
        action = f"integration.{provider}.{obj}.{operation}d"
        if failed:
            message = f"{label} {obj} {operation} for {contact} ({company}) failed: HTTP 429"
            return "error", CRM_SYNC, action, message, metadata
        fields = rng.randint(2, 9)
        message = f"{label} {obj} {operation}d for {contact} ({company}): {fields} fields"
        return "notice", CRM_SYNC, action, message, metadata


def generate(account: BenchAccount, count: int, end: datetime, seed: int = 8) -> Iterator[Entry]:
    """``count`` entries of ``account`` before ``end``, in time order, with unique timestamps."""
    story = _Story(account, seed)
    rng = story.rng
    end_ms = int(end.astimezone(UTC).timestamp() * 1000)
    span_ms = SPAN_DAYS * 86_400_000
    step = max(1, span_ms // count)
    start_ms = end_ms - step * count
    integration_from = end_ms - INTEGRATION_DAYS * 86_400_000
    names = list(CATEGORY_WEIGHTS)
    weights = list(CATEGORY_WEIGHTS.values())
    kept = [n for n in names if n != "integration"]
    kept_weights = [CATEGORY_WEIGHTS[n] for n in kept]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for n in range(count):
        ts_ms = start_ms + n * step + rng.randrange(step)
        if ts_ms >= integration_from:
            category = rng.choices(names, weights)[0]
        else:
            category = rng.choices(kept, kept_weights)[0]
        kind, actor, action, message, metadata = getattr(story, category)()
        yield {
            "id": f"b-{account.id}-{n:07d}",
            "timestamp": format_utc(epoch + timedelta(milliseconds=ts_ms)),
            "category": category, "type": kind, "actor": actor, "action": action,
            "message": message, "metadata": metadata,
        }  # fmt: skip
