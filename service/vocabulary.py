"""The fixed words of the contract: categories, entry types, actor types, providers.

Known metadata keys and their types live in ``index_templates/`` (the single source of
truth for mappings) and are read from there; this module holds only the closed lists.
"""

from __future__ import annotations

import re

STORED_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
"""The form of every timestamp the service stores: ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC, with
milliseconds)."""

CATEGORIES: tuple[str, ...] = (
    "audit",
    "credits",
    "ai",
    "webhook",
    "signal",
    "integration",
    "api",
)
"""Every category, in the order the page lists them."""

CATEGORY_LABELS: dict[str, str] = {
    "audit": "Audit",
    "credits": "Credits",
    "ai": "AI",
    "webhook": "Webhook",
    "signal": "Signal",
    "integration": "Integration",
    "api": "API",
}

EXPIRING_CATEGORIES: frozenset[str] = frozenset({"integration"})
"""Categories whose entries are deleted after the retention period; all others are kept."""

TYPES: tuple[str, ...] = ("notice", "warning", "error")
ACTOR_TYPES: tuple[str, ...] = ("user", "system", "api_key")
PROVIDERS: tuple[str, ...] = ("hubspot", "attio")
PAGE_PATH = "/settings/audit-logs"
"""Where the Audit Logs page is served (viewer links point below it)."""
