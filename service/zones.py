"""The timezone names the service accepts: one list, one function, for every zone it is given.

A zone is accepted when both sides understand it: Python's ``zoneinfo`` (which computes local
times, presets and export columns) and the engine (``time_zone`` of date histograms and date
queries). That is every name of the IANA database as ``zoneinfo`` lists it — links such as
``UTC`` and ``US/Eastern`` included — less the names that are files of the database rather than
zones: ``right/*`` and ``posix/*`` (leap-second and duplicate trees), ``posixrules``, ``Factory``
and ``localtime``, and the four names the engine's (Java's) database lacks: ``EST``, ``HST``,
``MST`` and ``ROC``. A test runs every accepted zone through a date histogram on the real
engine. Anything else — a directory such as ``America``, a path, a very long text — is a 400
naming the parameter or field that carried it.
"""

from __future__ import annotations

import functools
from zoneinfo import ZoneInfo, available_timezones

from service.errors import bad_request

REFUSED_NAMES = frozenset({"posixrules", "Factory", "localtime", "EST", "HST", "MST", "ROC"})
REFUSED_TREES = ("right/", "posix/")
CANONICAL_FOR_REFUSED = {
    "posixrules": "America/New_York",
    "Factory": "UTC",
    "localtime": "UTC",
    "EST": "Etc/GMT+5",
    "HST": "Etc/GMT+10",
    "MST": "Etc/GMT+7",
    "ROC": "Asia/Taipei",
}
"""What a stored refused name means, for ``auditlog accounts fix-timezones``."""


@functools.cache
def accepted_zones() -> frozenset[str]:
    """Every accepted zone name (read once from the IANA database that ``zoneinfo`` uses)."""
    return frozenset(
        name
        for name in available_timezones()
        if name not in REFUSED_NAMES and not name.startswith(REFUSED_TREES)
    )


def zone(name: object, field: str) -> ZoneInfo:
    """The zone called ``name``, or a 400 naming ``field`` when it is not an accepted zone."""
    if not isinstance(name, str) or name not in accepted_zones():
        shown = name[:64] + "..." if isinstance(name, str) and len(name) > 64 else name
        raise bad_request(
            f"unknown timezone {shown!r}: give an IANA zone name such as Europe/Paris or UTC",
            field=field,
        )
    return ZoneInfo(name)


def accepted_name(name: str) -> str | None:
    """An accepted zone that means the same as the refused ``name``, where there is one."""
    for tree in REFUSED_TREES:
        if name.startswith(tree):
            name = name[len(tree) :]
    name = CANONICAL_FOR_REFUSED.get(name, name)
    return name if name in accepted_zones() else None
