"""``python -m service.cli``: the auditlog command."""

from __future__ import annotations

from service.cli import main

raise SystemExit(main())
