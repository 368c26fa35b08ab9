"""The command line's arguments: every command with its help and examples.

A command names its handler as ``module:function`` of :mod:`service.cli`, imported only when that
command runs, so that ``--help`` and quick commands start without loading the whole service.
Help text is plain text (no markup): argparse prints it as written.
"""

from __future__ import annotations

import argparse
import os
import textwrap
from importlib.metadata import PackageNotFoundError, version
from typing import Any

DESCRIPTION = """\
The auditlog command line: the functions the service uses, from a shell.

Commands work on the engine at AUDITLOG_ES_URL (else the local node of 'auditlog engine start'),
under AUDITLOG_INDEX_PREFIX, and set it up first when it is new. Exit codes: 0 done; 1 the
engine was unavailable or some work failed (run it again); 2 a usage error."""
WIDTH = 78


def package_version() -> str:
    try:
        return version("auditlog")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _examples(lines: list[str]) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _paragraphs(text: str) -> str:
    return "\n\n".join(textwrap.fill(p, WIDTH) for p in textwrap.dedent(text).split("\n\n"))


def command(
    sub: Any,
    name: str,
    summary: str,
    *,
    examples: list[str],
    handler: str | None = None,
    details: str = "",
) -> argparse.ArgumentParser:
    """A (sub)command: ``summary`` in its parent's list, ``details`` below its usage, then its
    examples; ``handler`` is ``module:function`` of this package."""
    description = _paragraphs(f"{summary[:1].upper()}{summary[1:]}.\n\n{details}".strip())
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=summary,
        description=description,
        epilog=_examples(examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if handler is not None:
        parser.set_defaults(func=handler)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="auditlog",
        description=_paragraphs(DESCRIPTION),
        epilog=_examples(
            [
                "auditlog run                                  # local engine, demo data, service",
                "auditlog accounts create acme --timezone Europe/Paris",
                "auditlog import entries.ndjson.gz --account acme",
                "auditlog export --account acme --range 30d --output acme.csv",
                "auditlog COMMAND --help                       # a command's options and examples",
            ]
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"auditlog {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_service_commands(sub)
    _add_integrity_commands(sub)
    _add_import(sub)
    _add_export(sub)
    _add_accounts(sub)
    _add_keys(sub)
    return parser


def _add_service_commands(sub: Any) -> None:
    run = command(
        sub,
        "run",
        "serve on the local engine with demo data",
        handler="operations:cmd_run",
        examples=["auditlog run", "auditlog run --no-demo"],
    )
    run.add_argument("--no-demo", action="store_true", help="do not load demo data")
    serve = command(
        sub,
        "serve",
        "serve on the engine at AUDITLOG_ES_URL",
        handler="operations:cmd_serve",
        examples=[
            "AUDITLOG_ES_URL=http://127.0.0.1:9200 auditlog serve",
            "auditlog serve --workers 4 --host 0.0.0.0 --port 8080",
        ],
    )
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument("--host", help="default: AUDITLOG_HOST")
    serve.add_argument("--port", type=int, help="default: AUDITLOG_PORT")
    engine = command(
        sub,
        "engine",
        "the local Elasticsearch node",
        handler="operations:cmd_engine",
        examples=[
            "auditlog engine start --heap 2g",
            "auditlog engine status --url",
            "auditlog engine stop",
        ],
    )
    engine.add_argument("action", choices=["start", "stop", "status"])
    engine.add_argument("--dir", help="instance directory (default: AUDITLOG_ENGINE_DIR)")
    engine.add_argument("--heap", default="1g", help="JVM heap, e.g. 1g")
    engine.add_argument("--url", action="store_true", help="print only the engine's URL")
    command(
        sub,
        "setup",
        "install templates, policies and system indices",
        handler="operations:cmd_setup",
        examples=["auditlog setup"],
    )
    retention = command(
        sub,
        "retention",
        "apply retention where the engine has no ILM",
        handler="operations:cmd_retention",
        examples=["auditlog retention run", "auditlog retention run --force"],
    )
    retention.add_argument("action", choices=["run"])
    retention.add_argument("--force", action="store_true", help="sweep even when ILM is present")


def _add_integrity_commands(sub: Any) -> None:
    integrity = command(
        sub,
        "integrity",
        "the integrity keys",
        handler="operations:cmd_integrity",
        examples=["auditlog integrity init-keys /etc/auditlog/keys"],
    )
    integrity.add_argument("action", choices=["init-keys"])
    integrity.add_argument("dir", help="the keys directory (AUDITLOG_KEYS_DIR)")
    verify = command(
        sub,
        "verify",
        "verify an account's log against the stored entries",
        handler="operations:cmd_verify",
        details="With --heads, also the heads (signed checkpoints) a streaming destination "
        "received and the customer kept: each must be signed by the service and agree with "
        "its log. FILE holds checkpoint events or bare checkpoints, as NDJSON, a JSON array, "
        "webhook batches, Splunk HEC or Elasticsearch documents, or syslog lines; other events "
        "are ignored. Exit codes: 0 clean; 1 anything altered, missing, unsealed, broken, a "
        "head the log contradicts, or no head signed by the service's keys; 2 a usage error "
        "(no checkpoint of the account in FILE).",
        examples=[
            "auditlog verify --account acme",
            "auditlog verify --account acme --heads received-events.ndjson",
        ],
    )
    verify.add_argument("--account", required=True, help="the account id")
    verify.add_argument(
        "--heads",
        metavar="FILE",
        help="checkpoints kept from a streaming destination, to check against the log",
    )
    check = command(
        sub,
        "verify-export",
        "check an export file against its signed manifest",
        handler="operations:cmd_verify_export",
        details="Offline; with --proofs the service proves every row in the account's log.",
        examples=[
            "auditlog verify-export acme.csv acme.csv.manifest.json --public-key keys.json",
            "auditlog verify-export acme.csv acme.csv.manifest.json --proofs \\",
            '    --url https://audit.example.com --api-key "$AUDITLOG_API_KEY"',
        ],
    )
    check.add_argument("file", help="the exported file (CSV, XLSX or NDJSON)")
    check.add_argument("manifest", help="its manifest (GET /v1/exports/<id>/manifest)")
    check.add_argument(
        "--public-key",
        help="a PEM public key, or the JSON of /v1/integrity/keys "
        "(default: the keys of AUDITLOG_KEYS_DIR)",
    )
    check.add_argument(
        "--proofs",
        action="store_true",
        help="prove every row in the account's log under the manifest's head",
    )
    check.add_argument(
        "--url",
        default=os.environ.get("AUDITLOG_URL"),
        help="the service, for --proofs (default: AUDITLOG_URL)",
    )
    check.add_argument(
        "--api-key",
        default=os.environ.get("AUDITLOG_API_KEY"),
        help="a key with the read scope, for --proofs (default: AUDITLOG_API_KEY)",
    )


def _add_import(sub: Any) -> None:
    imp = command(
        sub,
        "import",
        "import entries from an NDJSON or CSV file (gzip too)",
        handler="importing:cmd_import",
        details="Through the ingest API's validation; running the same file again adds nothing. "
        "Progress on stderr (percent of the file, entries/s, time left), the summary on stdout "
        "as JSON.",
        examples=[
            "auditlog import entries.ndjson --account acme",
            "auditlog import export.csv.gz        # each row's account_id column",
            "auditlog import dump.txt --format ndjson --account acme",
        ],
    )
    imp.add_argument("file", help="the file; .gz or gzip content is decompressed")
    imp.add_argument("--account", help="the account of every entry (else an account_id field)")
    imp.add_argument("--format", choices=["ndjson", "csv"], help="default: from the suffix")


def _add_export(sub: Any) -> None:
    exp = command(
        sub,
        "export",
        "export an account's filtered entries to a file",
        handler="exporting:cmd_export",
        details="The filters and formats of GET /v1/export, recorded in the account's log like "
        "an API export, with a signed manifest (signed once the file is complete and its rows "
        "sealed). The file appears under its name only once complete. Progress on stderr; the "
        "export id, file and manifest location on stdout as JSON.",
        examples=[
            "auditlog export --account acme --range 30d --output acme.csv",
            "auditlog export --account acme --format xlsx --category webhook --type error",
            "auditlog export --account acme --from 2026-11-01 --to 2026-12-01 --tz UTC \\",
            "    --format ndjson --output - | gzip > november.ndjson.gz",
            "auditlog export --account acme --q 'actor:u_42 \"api key\"' \\",
            "    --output jane.csv --manifest jane.csv.manifest.json",
        ],
    )
    exp.add_argument("--account", required=True, help="the account id")
    exp.add_argument("--format", default="csv", metavar="{csv,xlsx,ndjson}", help="default: csv")
    exp.add_argument(
        "--q",
        "--query",
        dest="q",
        metavar="TEXT",
        help='search text, as the API\'s q (words, "phrases", qualifiers)',
    )
    for name, what in (
        ("category", "a category"),
        ("type", "notice, warning or error"),
        ("actor", "an actor id"),
        ("action", "an action (ending in * for a prefix)"),
        ("provider", "hubspot or attio"),
    ):
        exp.add_argument(
            f"--{name}",
            action="append",
            metavar=name.upper(),
            help=f"{what}; repeat or separate with commas",
        )
    exp.add_argument("--range", help="1h, 24h, 7d (default), 30d, 90d or all")
    exp.add_argument(
        "--from",
        dest="from_",
        metavar="WHEN",
        help="a date (local midnight) or RFC 3339 instant; overrides --range",
    )
    exp.add_argument("--to", metavar="WHEN", help="the end, excluded (default: now)")
    exp.add_argument("--tz", help="IANA timezone of dates and local times (default: the account's)")
    exp.add_argument("--order", help="desc (newest first, the default) or asc")
    exp.add_argument(
        "--bom",
        action="store_true",
        help="start a CSV with a UTF-8 byte-order mark (for Excel), as the page's CSV",
    )
    exp.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        help="the file, a directory, or - for stdout (default: the export's own "
        "name in the current directory)",
    )
    exp.add_argument("--manifest", metavar="FILE", help="also write the signed manifest here")


def _add_accounts(sub: Any) -> None:
    accounts = command(
        sub,
        "accounts",
        "create, change and list accounts",
        handler="administration:cmd_accounts",
        details="Validated and recorded in the account's log as the admin API does.",
        examples=[
            "auditlog accounts create acme --name 'Acme Inc' --timezone Europe/Paris",
            "auditlog accounts list",
        ],
    )
    actions = accounts.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = command(
        actions,
        "create",
        "create an account",
        examples=[
            "auditlog accounts create acme",
            "auditlog accounts create acme --name 'Acme Inc' --timezone America/New_York",
        ],
    )
    update = command(
        actions,
        "update",
        "change an account's name or timezone",
        examples=["auditlog accounts update acme --timezone Europe/Berlin"],
    )
    for parser in (create, update):
        parser.add_argument("id", help="account id: 1-63 of a-z 0-9 _ -")
        parser.add_argument("--name", help="display name (create: default the id)")
        parser.add_argument("--timezone", help="IANA timezone (create: default UTC)")
    command(actions, "list", "list accounts", examples=["auditlog accounts list"])
    command(
        actions,
        "fix-timezones",
        "give accounts stored with an unsupported timezone the zone it means",
        examples=["auditlog accounts fix-timezones"],
    )


def _add_keys(sub: Any) -> None:
    keys = command(
        sub,
        "keys",
        "create, revoke and list API keys",
        handler="administration:cmd_keys",
        examples=[
            "auditlog keys create --account acme --scopes ingest,read",
            "auditlog keys revoke 3f9a0c1d2e4b5a6c",
            "auditlog keys list --account acme",
        ],
    )
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = command(
        actions,
        "create",
        "create a key; prints its secret once",
        examples=[
            "auditlog keys create --account acme --scopes ingest --name 'billing service'",
            "auditlog keys create --platform --scopes admin,read",
        ],
    )
    owner = create.add_mutually_exclusive_group(required=True)
    owner.add_argument("--account", help="an account key of this account")
    owner.add_argument("--platform", action="store_true", help="a platform key (any account)")
    create.add_argument(
        "--scopes", required=True, help="comma-separated: ingest,read,export,viewer,admin"
    )
    create.add_argument("--name", default="key", help="what the key is for")
    revoke = command(
        actions,
        "revoke",
        "revoke a key",
        details="Give the key's id, or - (or --stdin) to read the whole key from standard "
        "input. A whole key is never taken as an argument: arguments stay in shell history "
        "and show in ps.",
        examples=[
            "auditlog keys revoke 3f9a0c1d2e4b5a6c",
            "auditlog keys revoke - < leaked-key.txt",
            "auditlog keys revoke --stdin        # then paste the key (not shown)",
        ],
    )
    revoke.add_argument(
        "key_id",
        nargs="?",
        metavar="KEY_ID",
        help="the key's id (the part between alk_ and the next _), or -",
    )
    revoke.add_argument(
        "--stdin",
        action="store_true",
        help="read the whole key (alk_<id>_<secret>) from standard input",
    )
    listing = command(
        actions,
        "list",
        "list keys (never their secrets)",
        examples=["auditlog keys list", "auditlog keys list --account acme"],
    )
    listing.add_argument("--account", help="only the keys of this account")
