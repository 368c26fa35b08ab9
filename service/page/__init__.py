"""The Audit Logs web page (Settings → Audit Logs), served at ``/settings/audit-logs``.

Server-rendered HTML over the same data functions as the JSON API: sign-in with an account key
kept in a cookie (:mod:`.session`), the view's URL state (:mod:`.view`), filters and facet chips
(:mod:`.controls`), the histogram as SVG (:mod:`.chart`), the entries table (:mod:`.table`), and
Export Logs through the export code of ``/v1/export`` (:mod:`.exports`).
"""

from __future__ import annotations

from service.page.routes import routes

__all__ = ["routes"]
