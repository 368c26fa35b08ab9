"""Demo data: a deterministic generator of realistic audit log entries.

This module owns the fictional demo accounts and the story their logs tell: LinkedIn Signals
that watch posts and spend credits, AI Agents, webhooks, HubSpot and Attio sync, a public API
and team members changing settings. Entries come out in the contract's shape, ready for the
ingest path, so the page, the exports and the benchmarks have a busy, believable log to show.

Every draw comes from a ``random.Random`` seeded from ``seed`` and the account id, and the clock
is never read: the same ``now``, ``days`` and ``seed`` always give the same entries and ids.
Ids are ``demo-<account>-<n:06d>`` in time order: loading the same demo twice adds nothing, and
a demo for another ``now`` reuses the same ids, so load it into fresh accounts.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple, TypeVar
from zoneinfo import ZoneInfo

from service.vocabulary import CATEGORIES

INTEGRATION_DAYS = 29
"""Integration entries are generated only this far back: older ones would already be expired."""


@dataclass(frozen=True)
class Member:
    """A team member of a demo account."""

    id: str
    name: str
    email: str


@dataclass(frozen=True)
class DemoAccount:
    """A demo tenant: its id, display name, IANA timezone and team."""

    id: str
    name: str
    timezone: str
    members: tuple[Member, ...]


def _team(domain: str, first_id: int, *names: str) -> tuple[Member, ...]:
    return tuple(
        Member(f"u_{first_id + i}", name, f"{name.lower().replace(' ', '.')}@{domain}")
        for i, name in enumerate(names)
    )


DEMO_ACCOUNTS: tuple[DemoAccount, ...] = (
    DemoAccount("acme", "Acme Corp", "Europe/Paris", _team(
        "acme.test", 101, "Jane Doe", "Camille Martin", "Thomas Bernard", "Lea Rousseau")),
    DemoAccount("globex", "Globex", "America/New_York", _team(
        "globex.test", 201, "Sarah Chen", "Michael Brooks", "Dana Whitfield")),
    DemoAccount("initech", "Initech", "UTC", _team(
        "initech.test", 301, "Peter Gibbons", "Joanna Rivera", "Samir Haddad", "Bill Lumbergh",
        "Milton Waddams")),
)  # fmt: skip

_Event = tuple[datetime, dict[str, Any]]
_Actor = dict[str, str]
_Row = TypeVar("_Row", bound=tuple[Any, ...])

SCHEDULER = {"type": "system", "id": "scheduler", "name": "Scheduler"}
AGENT_RUNNER = {"type": "system", "id": "agent-runner", "name": "AI Agent runner"}
DISPATCHER = {"type": "system", "id": "webhook-dispatcher", "name": "Webhook dispatcher"}
CRM_SYNC = {"type": "system", "id": "crm-sync", "name": "CRM sync"}
BILLING = {"type": "system", "id": "billing", "name": "Billing"}

# Relative activity of people and their automations by local hour of day.
HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 4, 8, 12, 15, 15, 13, 9, 12, 14, 14, 12, 9, 6, 4, 3, 2, 2, 1)
SIGNALS = (  # name, local hours of the scheduled runs
    ("Competitor mentions", (8, 16)), ("Hiring posts in fintech", (9,)),
    ("Funding announcements", (7, 15)), ("Churn risk: customer complaints", (10, 16)),
    ("Product launches in martech", (11,)), ("New VP Sales hires", (8, 17)),
    ("SaaStr speakers", (12,)), ("Posts about our brand", (9, 17)),
)  # fmt: skip
AGENTS = (  # name, model
    ("Lead qualifier", "gpt-4o-mini"), ("Post summarizer", "claude-sonnet-4"),
    ("Outreach drafter", "gpt-4o"), ("Account researcher", "claude-sonnet-4"),
    ("Intent scorer", "gpt-4o-mini"),
)  # fmt: skip
WEBHOOKS = (  # url template, subscribed events
    ("https://hooks.{host}/linkedin-signals", ("signal.post.matched",)),
    ("https://automation.{host}/webhook/ai-agent", ("ai.run.completed",)),
    ("https://crm.{host}/inbound/signals", ("signal.post.matched", "ai.run.completed")),
)
API_KEY_NAMES = ("Zapier production", "Data warehouse sync", "Internal dashboard", "Make scenario")
PROVIDER_SETS = (("hubspot",), ("attio",), ("hubspot", "attio"))
PROVIDER_LABELS = {"hubspot": "HubSpot", "attio": "Attio"}
CONTACTS = (
    ("Marie Dubois", "Northwind Analytics"), ("Daniel Okafor", "Brightpath Capital"),
    ("Aisha Rahman", "Lumen Payments"), ("Lukas Becker", "Fjord Logistics"),
    ("Sofia Rossi", "Verde Foods"), ("Hiroshi Tanaka", "Kumo Robotics"),
    ("Emily Carter", "Bluebird Health"), ("Mateo Garcia", "Solstice Energy"),
    ("Chloe Nguyen", "Paperplane HR"), ("Oliver Smith", "Harbor Insurance"),
    ("Fatima Zahra", "Atlas Ledger"), ("Noah Williams", "Quartz Security"),
    ("Ingrid Larsen", "Nordlys Media"), ("Ravi Kumar", "Monsoon Cloud"),
    ("Elena Petrova", "Orbit Fintech"), ("James O'Connor", "Shamrock Retail"),
)  # fmt: skip
INVITEES = ("Priya Patel", "Lucas Moreau", "Hannah Kim", "Omar Haddad", "Grace Lee")
SIGNAL_CHANGES = ("schedule", "keywords", "audience filters", "daily credit cap", "exclusions")

SIGNAL_OUTCOMES = (  # weight, action suffix, type, message
    (93, "completed", "notice", "Signal '{name}' processed {processed} posts, {matched} matched"),
    (4, "partial", "warning", "Signal '{name}' stopped after {processed} posts: LinkedIn rate "
     "limit reached; the next run picks up the rest"),
    (3, "failed", "error", "Signal '{name}' run failed: {reason}"),
)  # fmt: skip
SIGNAL_FAILURES = (
    "LinkedIn session expired; reconnect LinkedIn in Settings",
    "LinkedIn search returned HTTP 503 three times", "timed out after 300 s while fetching posts",
)  # fmt: skip
AI_OUTCOMES = (  # weight, status, type, action, message
    (92, "succeeded", "notice", "ai.run.completed", "AI Agent '{agent_name}' completed run {run_id}"
     "{subject} in {seconds:.1f} s ({model}, {tokens_in:,} in / {tokens_out:,} out tokens)"),
    (4, "truncated", "warning", "ai.run.completed", "AI Agent '{agent_name}' run {run_id}{subject} "
     "finished with truncated output: reached the output token limit ({model})"),
    (4, "failed", "error", "ai.run.failed", "AI Agent '{agent_name}' run {run_id}{subject} failed "
     "after {seconds:.1f} s: {reason}"),
)  # fmt: skip
AI_FAILURES = (
    "the model provider timed out after 60 s", "the output did not match the expected JSON schema",
    "the prompt exceeded the model's context window",
)  # fmt: skip
WEBHOOK_PLANS = ((90, 0), (4, 1), (1.5, 2), (4.5, 3))  # weight, failed attempts (3: gave up)
WEBHOOK_ERRORS = (  # status code (None: no response), error, duration in ms (0: drawn)
    (502, "HTTP 502 Bad Gateway", 0), (503, "HTTP 503 Service Unavailable", 0),
    (500, "HTTP 500 Internal Server Error", 0), (404, "HTTP 404 Not Found", 0),
    (None, "timed out after 10 s waiting for a response", 10_000),
    (None, "connection refused", 3),
)  # fmt: skip
RETRY_DELAYS_MS = (30_000, 300_000)
WEBHOOK_OUTCOMES = {  # (failed, last attempt) -> type, action, message
    (False, False): (
        "notice",
        "succeeded",
        "POST {url} returned {status_code} in {duration_ms} ms",
    ),
    (True, False): ("warning", "retrying", "POST {url} failed ({error}); retrying in {delay} s"),
    (True, True): ("error", "failed", "POST {url} failed after 3 attempts ({error}); giving up"),
}
CRM_OPERATIONS = (  # weight, object, operation, past tense
    (40, "contact", "update", "updated"), (25, "contact", "create", "created"),
    (20, "company", "sync", "synced"), (10, "deal", "create", "created"),
)  # fmt: skip
CRM_OUTCOMES = (  # weight, status, type, message
    (94, "success", "notice", "{label} {object} {verb}: {record} (record {record_id})"),
    (2, "success", "warning", "{label} {object} {verb}: {record} (record {record_id}); "
     "2 properties skipped because they are not mapped"),
    (2, "failed", "error", "{label} rejected the {object} {operation} for {record}: access "
     "token expired; reconnect {label} in Settings > Integrations"),
    (1, "failed", "error", "{label} rejected the {object} {operation} for {record}: property "
     "'linkedin_url' does not exist on {object}"),
    (1, "failed", "error", "{label} rejected the {object} {operation} for {record}: rate limit "
     "exceeded; it will be retried on the next sync"),
)  # fmt: skip
API_CALLS = (  # weight, method, path template, success status
    (30, "GET", "/v1/signals/{signal}/posts", 200), (15, "GET", "/v1/signals", 200),
    (12, "POST", "/v1/contacts/enrich", 200), (8, "GET", "/v1/credits/balance", 200),
    (6, "GET", "/v1/agents/{agent}/runs", 200), (4, "POST", "/v1/signals/{signal}/runs", 202),
    (3, "PATCH", "/v1/signals/{signal}", 200), (2, "POST", "/v1/webhooks", 201),
    (1, "DELETE", "/v1/webhooks/{webhook}", 204),
)  # fmt: skip
API_OUTCOMES = (  # weight, status (0: the call's success status), type, reason
    (92, 0, "notice", ""),
    (3, 429, "warning", "rate limit exceeded (120 requests per minute)"),
    (2, 404, "warning", "resource not found"),
    (1.5, 422, "warning", "validation failed: 'linkedin_url' is not a LinkedIn profile URL"),
    (0.5, 403, "warning", "the API key lacks the 'write' scope"),
    (1.5, 503, "error", "service temporarily unavailable"),
)
AUDIT_ACTIONS = (  # weight, action, type, target type, message
    (30, "auth.login", "notice", "member", "{actor} signed in"),
    (3, "auth.login.failed", "warning", "member", "Failed sign-in for {email}: wrong password"),
    (14, "settings.signal.updated", "notice", "signal",
     "{actor} changed the Signal '{target}' {detail}"),
    (3, "settings.signal.created", "notice", "signal", "{actor} created the Signal '{target}'"),
    (3, "settings.signal.paused", "notice", "signal", "{actor} paused the Signal '{target}'"),
    (5, "settings.agent.updated", "notice", "agent",
     "{actor} edited the instructions of the AI Agent '{target}'"),
    (3, "settings.webhook.updated", "notice", "webhook",
     "{actor} changed the webhook endpoint {target}"),
    (2, "keys.created", "notice", "api_key", "{actor} created the API key '{target}'"),
    (1, "keys.revoked", "notice", "api_key", "{actor} revoked the API key '{target}'"),
    (2, "members.invited", "notice", "invitation", "{actor} invited {target} to {account}"),
    (1, "members.role_changed", "notice", "teammate", "{actor} made {target} an admin"),
    (1, "settings.integration.reconnected", "notice", "integration",
     "{actor} reconnected the {target} integration"),
)  # fmt: skip


class _Signal(NamedTuple):
    id: str
    name: str
    hours: tuple[int, ...]


class _Agent(NamedTuple):
    id: str
    name: str
    model: str


class _Webhook(NamedTuple):
    id: str
    url: str
    events: tuple[str, ...]


class _ApiKey(NamedTuple):
    id: str
    name: str
    ip: str


def generate_demo_entries(
    now: datetime,
    days: int = 90,
    seed: int = 7,
    accounts: Sequence[DemoAccount] = DEMO_ACCOUNTS,
) -> Iterator[dict[str, Any]]:
    """Yield demo entries timestamped in ``(now - days, now]``, in time order per account."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    for account in accounts:
        events = _AccountStory(account, seed, now).events(days)
        for n, (ts, event) in enumerate(events, start=1):
            entry_id = {"id": f"demo-{account.id}-{n:06d}", "account_id": account.id}
            stamp = f"{ts:%Y-%m-%dT%H:%M:%S}.{ts.microsecond // 1000:03d}Z"
            yield {**entry_id, "timestamp": stamp, **event}


class _AccountStory:
    """One account's setup, drawn once from its own generator, and the days of its log."""

    def __init__(self, account: DemoAccount, seed: int, now: datetime) -> None:
        rng = self.rng = random.Random(f"{seed}:{account.id}")
        self.now, self.integration_start = now, now - timedelta(days=INTEGRATION_DAYS)
        self.account, self.tz, host = account, ZoneInfo(account.timezone), f"{account.id}.test"
        self.signals = [_Signal(_hex(rng, "sig"), n, h) for n, h in rng.sample(SIGNALS, 3)]
        self.agents = [_Agent(_hex(rng, "agt"), n, m) for n, m in rng.sample(AGENTS, 2)]
        hooks = WEBHOOKS[: rng.randint(1, len(WEBHOOKS))]
        self.webhooks = [_Webhook(_hex(rng, "wh"), u.format(host=host), e) for u, e in hooks]
        names = enumerate(rng.sample(API_KEY_NAMES, 2))
        self.api_keys = [_ApiKey(_hex(rng, "key"), n, f"203.0.113.{10 + i}") for i, n in names]
        self.providers = rng.choice(PROVIDER_SETS)
        self.balance, self.top_up = rng.choice((300, 450, 600)), rng.choice((400, 500))
        self.out: list[_Event] = []

    def events(self, days: int) -> list[_Event]:
        """The entries of the window ``(now - days, now]``, in time order."""
        start = self.now - timedelta(days=days)
        local_day = start.astimezone(self.tz).date()
        while local_day <= self.now.astimezone(self.tz).date():
            self._day(local_day)
            local_day += timedelta(days=1)
        window = [item for item in self.out if start < item[0] <= self.now]
        return self._apply_credit_balance(sorted(window, key=lambda item: item[0]))

    def _day(self, day: date) -> None:
        rng, members = self.rng, self.account.members
        people, machines = (0.15, 0.5) if day.weekday() >= 5 else (1.0, 1.0)
        for signal in self.signals:
            for hour in signal.hours:
                self._signal_run(signal, self._local(day, hour, minutes=2), SCHEDULER, machines)
        for _ in range(_count(rng, 0.4 * people) if members else 0):
            actor, signal = _user(rng.choice(members)), rng.choice(self.signals)
            self._signal_run(signal, self._local(day), actor, 1.0)
        for _ in range(_count(rng, 0.8 * machines)):
            self._ai_run(self._local(day), SCHEDULER, None)
        for _ in range(_count(rng, 3.5 * machines)):
            self._api_request(self._local(day))
        for _ in range(_count(rng, 2.5 * people) if members else 0):
            self._audit(self._local(day))

    def _emit(
        self, ts: datetime, type_: str, actor: _Actor, action: str, message: str, **metadata: Any
    ) -> None:
        """Record an entry; its category is the action's first word, or audit for team actions."""
        category = action.split(".")[0] if action.split(".")[0] in CATEGORIES else "audit"
        entry = {"category": category, "type": type_, "actor": dict(actor), "action": action}
        self.out.append((ts, {**entry, "message": message, "metadata": metadata}))

    def _signal_run(self, signal: _Signal, ts: datetime, actor: _Actor, busy: float) -> None:
        rng, run_id = self.rng, _hex(self.rng, "run", 40)
        _, outcome, type_, template = _pick(rng, SIGNAL_OUTCOMES)
        processed = int(rng.randint(40, 400) * (0.5 + busy / 2))
        matched = 0 if outcome == "failed" else min(processed, _count(rng, 0.85 * busy))
        for _ in range(matched):
            ts = _after(ts, rng.randint(2_000, 40_000))
            self._post_match(signal, run_id, ts, actor)
        processed = rng.randint(0, 20) if outcome == "failed" else processed
        fields = {"name": signal.name, "processed": processed, "matched": matched}
        message = template.format(**fields, reason=rng.choice(SIGNAL_FAILURES)) + f" (run {run_id})"
        if actor is not SCHEDULER:
            message += f", started manually by {actor['name']}"
        ids = {"signal_id": signal.id, "signal_name": signal.name, "run_id": run_id}
        ts, action = _after(ts, rng.randint(1_000, 30_000)), f"signal.run.{outcome}"
        self._emit(ts, type_, actor, action, message, **ids, processed=processed)

    def _post_match(self, signal: _Signal, run_id: str, ts: datetime, actor: _Actor) -> None:
        rng, (contact, company) = self.rng, self.rng.choice(CONTACTS)
        urn, cost = _post_urn(rng, ts), rng.choice((1, 1, 2))
        ids = {"signal_id": signal.id, "signal_name": signal.name, "run_id": run_id}
        message = f"Signal '{signal.name}' matched a post by {contact} ({company}): {urn}"
        post = {"post_urn": urn, "contact_name": contact}
        self._emit(ts, "notice", actor, "signal.post.matched", message, **ids, **post)
        used = f"Signal '{signal.name}' used {_credits(cost)} on the post by {contact} ({urn})"
        spend = {"credits_used": cost, "signal_name": signal.name, "post_urn": urn}
        self._emit(_after(ts, 150), "notice", actor, "credits.consumed", used, **spend)
        if rng.random() < 0.55:
            self._webhook_delivery(_after(ts, 800), "signal.post.matched")
        if rng.random() < 0.5:
            self._crm_action(_after(ts, 2_500), contact, company)
        if rng.random() < 0.3:
            self._ai_run(_after(ts, 1_200), AGENT_RUNNER, (signal.name, urn, contact))

    def _ai_run(self, ts: datetime, actor: _Actor, source: tuple[str, str, str] | None) -> None:
        rng, agent, run_id = self.rng, self.rng.choice(self.agents), _hex(self.rng, "run", 40)
        _, status, type_, action, template = _pick(rng, AI_OUTCOMES)
        tokens_in, tokens_out = rng.randint(600, 9_000), rng.randint(80, 1_500)
        tokens_out = 0 if status == "failed" else tokens_out
        credits = 0 if status == "failed" else 1 + (tokens_in + tokens_out) // 4_000
        duration = int(rng.lognormvariate(8.2, 0.5))
        run = {"agent_id": agent.id, "agent_name": agent.name, "run_id": run_id, "status": status}
        usage = {"model": agent.model, "tokens_in": tokens_in, "tokens_out": tokens_out}
        cost = {"duration_ms": duration, "credits_used": credits}
        subject = f" on the post by {source[2]}" if source else " (daily digest)"
        text = {"subject": subject, "seconds": duration / 1000, "reason": rng.choice(AI_FAILURES)}
        message = template.format(**run, **usage, **text)
        ts = _after(ts, duration)
        self._emit(ts, type_, actor, action, message, **run, **usage, **cost)
        if credits:
            post = {"signal_name": source[0], "post_urn": source[1]} if source else {}
            used = f"AI Agent '{agent.name}' used {_credits(credits)} on run {run_id}"
            spend = {"credits_used": credits, **post}
            self._emit(_after(ts, 100), "notice", actor, "credits.consumed", used, **spend)
            self._webhook_delivery(_after(ts, 500), "ai.run.completed")

    def _webhook_delivery(self, ts: datetime, event_name: str) -> None:
        hooks = [hook for hook in self.webhooks if event_name in hook.events]
        if not hooks:
            return
        hook, (_, failures) = self.rng.choice(hooks), _pick(self.rng, WEBHOOK_PLANS)
        status, error, error_ms = self.rng.choice(WEBHOOK_ERRORS)
        for attempt in range(1, min(failures + 1, 3) + 1):
            failed, delay = attempt <= failures, RETRY_DELAYS_MS[min(attempt, 2) - 1]
            duration = int(self.rng.lognormvariate(5, 0.6))
            duration = error_ms if failed and error_ms else duration
            meta: dict[str, Any] = {"webhook_id": hook.id, "url": hook.url, "event": event_name}
            code = status if failed else self.rng.choice((200, 200, 204))
            meta |= {"status_code": code} if code is not None else {}
            meta |= {"attempt": attempt, "duration_ms": duration}
            meta |= {"error": error} if failed else {}
            type_, action, template = WEBHOOK_OUTCOMES[failed, failed and attempt == 3]
            type_ = "warning" if attempt > 1 and not failed else type_  # succeeded after retries
            message = template.format(**meta, delay=delay // 1000)
            message += f" [{event_name}, attempt {attempt}]"
            self._emit(ts, type_, DISPATCHER, f"webhook.delivery.{action}", message, **meta)
            ts = _after(ts, duration + delay)

    def _crm_action(self, ts: datetime, contact: str, company: str) -> None:
        if ts <= self.integration_start:
            return  # it would already be deleted by the retention
        provider = self.rng.choice(self.providers)
        label = PROVIDER_LABELS[provider]
        _, obj, operation, verb = _pick(self.rng, CRM_OPERATIONS)
        _, status, type_, template = _pick(self.rng, CRM_OUTCOMES)
        record = {"contact": contact, "company": company}.get(obj, f"{company} - LinkedIn signal")
        hubspot_id = str(self.rng.randrange(10**10, 10**11))
        attio_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        record_id = hubspot_id if provider == "hubspot" else attio_id
        what = {"provider": provider, "object": obj, "operation": operation}
        result = {"record_id": record_id, "contact_name": contact, "status": status}
        message = template.format(**what, **result, label=label, verb=verb, record=record)
        action = f"integration.{provider}.{obj}.{'failed' if status == 'failed' else verb}"
        self._emit(ts, type_, CRM_SYNC, action, message, **what, **result)

    def _api_request(self, ts: datetime) -> None:
        rng, key = self.rng, self.rng.choice(self.api_keys)
        _, method, template, success = _pick(rng, API_CALLS)
        _, status, type_, reason = _pick(rng, API_OUTCOMES)
        status = status or success
        ids = {"signal": rng.choice(self.signals).id, "agent": rng.choice(self.agents).id}
        path = template.format(**ids, webhook=rng.choice(self.webhooks).id)
        duration = int(rng.lognormvariate(4.4, 0.6)) * (20 if status >= 500 else 1)
        message = f"{method} {path} returned {status} in {duration} ms"
        message += f": {reason}" if reason else ""
        actor = {"type": "api_key", "id": key.id, "name": key.name}
        call = {"method": method, "path": path, "status_code": status, "duration_ms": duration}
        client = {"ip": key.ip, "api_key_id": key.id}
        self._emit(ts, type_, actor, "api.request", message, **call, **client)

    def _audit(self, ts: datetime) -> None:
        rng, members = self.rng, self.account.members
        _, action, type_, target_type, template = _pick(rng, AUDIT_ACTIONS)
        index = rng.randrange(len(members))
        member = members[index]
        ip = f"192.0.2.{rng.randint(2, 250)}" if type_ == "warning" else f"198.51.100.{20 + index}"
        target_type, target_id, target_name = self._audit_target(target_type, member)
        text = {"detail": rng.choice(SIGNAL_CHANGES), "account": self.account.name}
        message = template.format(actor=member.name, email=member.email, target=target_name, **text)
        target = {"target_type": target_type, "target_id": target_id, "target_name": target_name}
        self._emit(ts, type_, _user(member), action, message, **target, ip=ip)

    def _audit_target(self, target_type: str, member: Member) -> tuple[str, str, str]:
        """The type, id and name of what an audit action changed."""
        if target_type == "member":
            return target_type, member.id, member.name
        if target_type == "invitation":
            first, last = self.rng.choice(INVITEES).lower().split()
            return target_type, _hex(self.rng, "inv"), f"{first}.{last}@{self.account.id}.test"
        if target_type == "teammate":
            others = [m for m in self.account.members if m != member]
            teammate = self.rng.choice(others or [member])
            return "member", teammate.id, teammate.name
        options = {
            "signal": [(s.id, s.name) for s in self.signals],
            "agent": [(a.id, a.name) for a in self.agents],
            "webhook": [(h.id, h.url) for h in self.webhooks],
            "api_key": [(k.id, k.name) for k in self.api_keys],
            "integration": [(f"int_{p}", PROVIDER_LABELS[p]) for p in self.providers],
        }
        return (target_type, *self.rng.choice(options[target_type]))

    def _apply_credit_balance(self, events: list[_Event]) -> list[_Event]:
        """Fill in the running balance, warn when it runs low and top it up before it runs out."""
        balance, warned, self.out = self.balance, False, []
        for ts, event in events:
            self.out.append((ts, event))
            if event["category"] != "credits":
                continue
            balance -= event["metadata"]["credits_used"]
            event["metadata"]["credits_balance"] = balance
            event["message"] += f"; balance {balance:,}"
            if balance < self.top_up // 5 and not warned:
                warned, message = True, f"Credit balance is low: {_credits(balance)} left"
                low = (_after(ts, 1), "warning", BILLING, "credits.balance.low", message)
                self._emit(*low, credits_balance=balance)
            if balance < self.top_up // 20:
                balance, warned = balance + self.top_up, False
                message = f"Auto top-up added {_credits(self.top_up)}; balance {balance:,}"
                top_up = (_after(ts, 2), "notice", BILLING, "credits.topped_up", message)
                self._emit(*top_up, credits_balance=balance)
        return sorted((item for item in self.out if item[0] <= self.now), key=lambda item: item[0])

    def _local(self, day: date, hour: int | None = None, minutes: int = 60) -> datetime:
        """A random instant in the given local hour, or in an hour drawn from the daily rhythm."""
        rng = self.rng
        hour = rng.choices(range(24), weights=HOUR_WEIGHTS)[0] if hour is None else hour
        minute, second, milli = rng.randrange(minutes), rng.randrange(60), rng.randrange(1000)
        local = datetime(day.year, day.month, day.day, hour, minute, second, milli * 1000, self.tz)
        return local.astimezone(UTC)


def _user(member: Member) -> _Actor:
    return {"type": "user", "id": member.id, "name": member.name, "email": member.email}


def _credits(amount: int) -> str:
    return f"{amount:,} credit{'' if amount == 1 else 's'}"


def _pick(rng: random.Random, table: Sequence[_Row]) -> _Row:
    return rng.choices(table, weights=[row[0] for row in table])[0]


def _count(rng: random.Random, mean: float) -> int:
    """A Poisson-distributed count (Knuth's method; the means here are small)."""
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _after(ts: datetime, milliseconds: int) -> datetime:
    return ts + timedelta(milliseconds=milliseconds)


def _hex(rng: random.Random, prefix: str, bits: int = 32) -> str:
    return f"{prefix}_{rng.getrandbits(bits):0{bits // 4}x}"


def _post_urn(rng: random.Random, ts: datetime) -> str:
    """A LinkedIn activity URN: the post's epoch milliseconds in the top bits, as in real ones."""
    posted = ts - timedelta(minutes=rng.randint(10, 720))
    return f"urn:li:activity:{int(posted.timestamp() * 1000) << 22 | rng.getrandbits(22)}"
