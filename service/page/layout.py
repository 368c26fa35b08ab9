"""The page's frame: the top bar, the sign-in screen, messages, and time formatting helpers."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from service.page.html import BASE_PATH, attrs, document, esc
from service.search.accounts import Account

PRODUCT = "Audit logs"


def utc_offset(tz: ZoneInfo, at: datetime | None = None) -> str:
    """``UTC+01:00`` for ``tz`` at ``at`` (now by default)."""
    offset = (at or datetime.now(UTC)).astimezone(tz).utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def timezone_label(tz: ZoneInfo) -> str:
    return f"{tz.key} ({utc_offset(tz)})"


def format_local(moment: datetime, tz: ZoneInfo, seconds: bool = False) -> str:
    """``Nov 26, 2026 14:05`` in ``tz``."""
    local = moment.astimezone(tz)
    clock = local.strftime("%H:%M:%S" if seconds else "%H:%M")
    return f"{local.strftime('%b')} {local.day}, {local.year} {clock}"


def brand() -> str:
    return (
        f'<a class="brand" href="{BASE_PATH}">'
        '<span class="brand-mark" aria-hidden="true"></span>auditlog</a>'
    )


def top_bar(account: Account | None, person: str | None = None, back: str | None = None,
            csrf: str | None = None) -> str:  # fmt: skip
    """The bar above every screen; with the account (and the person of a viewer link, and the
    way back to the host application) and a sign-out button when signed in."""
    right = ""
    if account is not None:
        tz = ZoneInfo(account.timezone)
        who = f'<span class="viewer-name">{esc(person)}</span>' if person else ""
        way_back = (f'<a class="back-to-app" href="{esc(back)}" target="_top">Back</a>'
                    if back else "")  # fmt: skip
        token = f'<input type="hidden" name="csrf" value="{esc(csrf)}">' if csrf else ""
        right = (
            f'<div class="account">{way_back}{who}'
            f'<span class="account-name">{esc(account.name)}</span>'
            f'<span class="account-tz" title="Times on this page are in the account timezone">'
            f"{esc(timezone_label(tz))}</span>"
            f'<form method="post" action="{BASE_PATH}/sign-out" class="sign-out">{token}'
            '<button type="submit" class="button button-quiet">Sign out</button></form>'
            "</div>"
        )
    return (
        '<header class="top-bar"><div class="top-bar-inner">'
        f'{brand()}<nav class="crumbs" aria-label="Breadcrumb"><span>Settings</span>'
        f'<span aria-hidden="true">/</span><a href="{BASE_PATH}" aria-current="page">'
        f"{PRODUCT}</a></nav>{right}</div></header>"
    )


SECTIONS = (("entries", "Entries", BASE_PATH), ("streaming", "Streaming", f"{BASE_PATH}/streaming"))
"""The page's sections, shown as tabs to keys that may manage destinations."""


def section_tabs(current: str) -> str:
    """Tabs between the entries and the streaming destinations (``current`` marked)."""
    links = "".join(
        f"<a{attrs({'class': 'tab', 'href': path, 'aria-current': name == current and 'page'})}>"
        f"{label}</a>"
        for name, label, path in SECTIONS
    )
    return f'<nav class="tabs" aria-label="Audit log sections">{links}</nav>'


def alert(message: str, kind: str = "error", title: str | None = None) -> str:
    heading = f"<strong>{esc(title)}</strong> " if title else ""
    role = "alert" if kind == "error" else "status"
    return f'<div class="alert alert-{esc(kind)}" role="{role}">{heading}{esc(message)}</div>'


def sign_in_page(next_url: str, message: str | None) -> str:
    error = alert(message, title="Could not sign in.") if message else ""
    body = (
        f"{top_bar(None)}"
        '<main class="sign-in" id="main">'
        '<form method="post" class="card sign-in-card"'
        f"{attrs({'action': f'{BASE_PATH}/sign-in'})}>"
        "<h1>Sign in to the audit log</h1>"
        '<p class="lead">The complete, searchable record of everything that happened in your '
        "account: Signal runs, credit usage, AI Agent runs, webhook deliveries, integrations, "
        "API requests and changes made by your team.</p>"
        f"{error}"
        '<label for="key">Account key</label>'
        '<input id="key" name="key" type="password" autocomplete="off" spellcheck="false" '
        'required autofocus placeholder="alk_…" aria-describedby="key-help">'
        f'<input type="hidden" name="next" value="{esc(next_url)}">'
        '<p id="key-help" class="help">Use a key of your account with the <code>read</code> '
        "scope (<code>export</code> adds Export Logs, <code>destinations</code> Streaming). "
        "It is kept in a cookie of this browser "
        "until you sign out. Running locally? <code>make run</code> prints a demo key.</p>"
        '<button type="submit" class="button button-primary">Sign in</button>'
        "</form></main>"
    )
    return document(f"Sign in · {PRODUCT}", body, body_class="page-sign-in")


def plain_page(
    account: Account | None, title: str, content: str, refresh_s: int | None = None,
    back: str = BASE_PATH,
) -> str:  # fmt: skip
    """A simple screen (export job, errors) inside the frame; ``back``: the view to go back to."""
    body = (
        f'{top_bar(account)}<main class="container narrow" id="main">'
        f'<p class="back"><a href="{esc(back)}">← Back to the audit log</a></p>'
        f"<h1>{esc(title)}</h1>{content}</main>"
    )
    return document(f"{title} · {PRODUCT}", body, refresh_s=refresh_s)
