"""The auditlog command line: the same functions the service uses, from a shell.

:mod:`.arguments` defines the commands; each runs a ``cmd_*`` function of :mod:`.operations`
(the service, its engine, setup, retention, integrity), :mod:`.administration` (accounts and
keys), :mod:`.importing` or :mod:`.exporting`, loaded when its command runs. :mod:`.plumbing`
holds what they share; :mod:`.progress` the progress line of imports and exports.
"""

from __future__ import annotations

import importlib
import sys

from service.cli.arguments import build_parser
from service.cli.plumbing import CLI_ACTOR, EXIT_FAILED, EXIT_USAGE, CliError

__all__ = ["CLI_ACTOR", "EXIT_FAILED", "EXIT_USAGE", "CliError", "build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    from service.integrity.keys import KeysError

    args = build_parser().parse_args(argv)
    module, name = str(args.func).split(":")
    handler = getattr(importlib.import_module(f"service.cli.{module}"), name)
    try:
        result = handler(args)
    except CliError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return e.code
    except KeysError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    return int(result or 0)
