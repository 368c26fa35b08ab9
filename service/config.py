"""Settings: read once, from the environment (then ``.env``), in this module only.

Every setting is documented in the README's configuration table; a test fails when one is
missing there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from starlette.config import Config
from starlette.datastructures import Secret

REPO_ROOT = Path(__file__).resolve().parent.parent
MAX_FUTURE_SKEW_S = 366 * 24 * 3600
"""``AUDITLOG_MAX_FUTURE_SKEW_S`` at most (a year): no later time is a plausible clock skew."""


@dataclass(frozen=True)
class Settings:
    es_url: str | None
    es_username: str | None
    es_password: Secret | None
    es_ca_certs: str | None
    index_prefix: str
    index_replicas: int
    admin_key: Secret | None
    templates_dir: Path
    policies_dir: Path
    retention_interval_s: float
    key_cache_s: float
    max_body_bytes: int
    max_entries: int
    max_line_bytes: int
    max_future_skew_s: int
    bulk_batch_size: int
    search_timeout_s: float
    export_ttl_h: float
    export_job_max_mb: int
    export_account_max_mb: int
    lease_ttl_s: float
    keys_dir: Path | None
    """The integrity keys (``service.integrity.keys``); required to serve."""
    sealing: bool
    seal_interval_s: float
    host: str
    port: int
    cursor_secret: Secret | None
    """``None``: the deployment's shared secret, created once in the engine."""
    cors_origins: tuple[str, ...]
    max_inflight: int
    body_idle_timeout_s: float
    body_timeout_s: float
    public_url: str | None = None
    """The base URL viewer links are built on (``None``: the URL the minting request came to)."""
    viewer_return_urls: tuple[str, ...] = ()
    """Where a viewer link may send its person back to (URL prefixes)."""
    frame_ancestors: tuple[str, ...] = ()
    """Origins that may embed the page in a frame (none: the page is never framed)."""
    destination_key: Secret | None = None
    """Encrypts destinations' secrets (32 bytes, base64); ``None``: destinations cannot be
    created."""
    destination_allow: str = ""
    """Networks (CIDRs) a destination may be in although they are private or local."""
    destination_pause_after_s: float = 3600.0
    """A destination failing for this long is paused (the account sees why)."""
    destination_disable_after_s: float = 7 * 86400.0
    """A destination paused for this long is disabled (re-enabled with a backfill)."""
    delivery_interval_s: float = 1.0
    """How often each destination is read for new positions."""


SETTING_NAMES = (
    "AUDITLOG_ES_URL",
    "AUDITLOG_ES_USERNAME",
    "AUDITLOG_ES_PASSWORD",
    "AUDITLOG_ES_CA_CERTS",
    "AUDITLOG_INDEX_PREFIX",
    "AUDITLOG_INDEX_REPLICAS",
    "AUDITLOG_ADMIN_KEY",
    "AUDITLOG_TEMPLATES_DIR",
    "AUDITLOG_POLICIES_DIR",
    "AUDITLOG_RETENTION_INTERVAL_S",
    "AUDITLOG_KEY_CACHE_S",
    "AUDITLOG_MAX_BODY_BYTES",
    "AUDITLOG_MAX_ENTRIES",
    "AUDITLOG_MAX_LINE_BYTES",
    "AUDITLOG_MAX_FUTURE_SKEW_S",
    "AUDITLOG_BULK_BATCH_SIZE",
    "AUDITLOG_SEARCH_TIMEOUT_S",
    "AUDITLOG_EXPORT_TTL_H",
    "AUDITLOG_EXPORT_JOB_MAX_MB",
    "AUDITLOG_EXPORT_ACCOUNT_MAX_MB",
    "AUDITLOG_LEASE_TTL_S",
    "AUDITLOG_KEYS_DIR",
    "AUDITLOG_SEALING",
    "AUDITLOG_SEAL_INTERVAL_S",
    "AUDITLOG_CURSOR_SECRET",
    "AUDITLOG_CORS_ORIGINS",
    "AUDITLOG_PUBLIC_URL",
    "AUDITLOG_VIEWER_RETURN_URLS",
    "AUDITLOG_FRAME_ANCESTORS",
    "AUDITLOG_DESTINATION_KEY",
    "AUDITLOG_DESTINATION_ALLOW",
    "AUDITLOG_DESTINATION_PAUSE_AFTER_S",
    "AUDITLOG_DESTINATION_DISABLE_AFTER_S",
    "AUDITLOG_DELIVERY_INTERVAL_S",
    "AUDITLOG_MAX_INFLIGHT",
    "AUDITLOG_BODY_IDLE_TIMEOUT_S",
    "AUDITLOG_BODY_TIMEOUT_S",
    "AUDITLOG_HOST",
    "AUDITLOG_PORT",
    "AUDITLOG_ENGINE_DIR",
    "AUDITLOG_CACHE_DIR",
)
"""Every setting the service reads (the engine manager reads the last two itself)."""


def load_settings(env_file: str | Path | None = ".env", **overrides: object) -> Settings:
    """Read the settings; keyword overrides (used by tests and the CLI) win over the environment."""
    config = Config(env_file if env_file and Path(env_file).exists() else None)
    password = config("AUDITLOG_ES_PASSWORD", cast=Secret, default=None)
    admin_key = config("AUDITLOG_ADMIN_KEY", cast=Secret, default=None)
    settings = Settings(
        es_url=config("AUDITLOG_ES_URL", default=None),
        es_username=config("AUDITLOG_ES_USERNAME", default=None),
        es_password=password,
        es_ca_certs=config("AUDITLOG_ES_CA_CERTS", default=None),
        index_prefix=config("AUDITLOG_INDEX_PREFIX", default="auditlog"),
        index_replicas=config("AUDITLOG_INDEX_REPLICAS", cast=int, default=0),
        admin_key=admin_key,
        templates_dir=config(
            "AUDITLOG_TEMPLATES_DIR", cast=Path, default=REPO_ROOT / "index_templates"
        ),
        policies_dir=config("AUDITLOG_POLICIES_DIR", cast=Path, default=REPO_ROOT / "ilm_policies"),
        retention_interval_s=config("AUDITLOG_RETENTION_INTERVAL_S", cast=float, default=3600.0),
        key_cache_s=min(config("AUDITLOG_KEY_CACHE_S", cast=float, default=5.0), 5.0),
        max_body_bytes=config("AUDITLOG_MAX_BODY_BYTES", cast=int, default=10 * 1024 * 1024),
        max_entries=config("AUDITLOG_MAX_ENTRIES", cast=int, default=5000),
        max_line_bytes=config("AUDITLOG_MAX_LINE_BYTES", cast=int, default=256 * 1024),
        max_future_skew_s=min(
            config("AUDITLOG_MAX_FUTURE_SKEW_S", cast=int, default=300), MAX_FUTURE_SKEW_S
        ),
        bulk_batch_size=config("AUDITLOG_BULK_BATCH_SIZE", cast=int, default=5000),
        search_timeout_s=config("AUDITLOG_SEARCH_TIMEOUT_S", cast=float, default=10.0),
        export_ttl_h=config("AUDITLOG_EXPORT_TTL_H", cast=float, default=24.0),
        export_job_max_mb=config("AUDITLOG_EXPORT_JOB_MAX_MB", cast=int, default=1024),
        export_account_max_mb=config("AUDITLOG_EXPORT_ACCOUNT_MAX_MB", cast=int, default=4096),
        lease_ttl_s=max(config("AUDITLOG_LEASE_TTL_S", cast=float, default=30.0), 1.0),
        keys_dir=Path(keys) if (keys := config("AUDITLOG_KEYS_DIR", default="")) else None,
        sealing=config("AUDITLOG_SEALING", cast=bool, default=True),
        seal_interval_s=max(config("AUDITLOG_SEAL_INTERVAL_S", cast=float, default=2.0), 0.2),
        host=config("AUDITLOG_HOST", default="127.0.0.1"),
        port=config("AUDITLOG_PORT", cast=int, default=8000),
        cursor_secret=Secret(cursor)
        if (cursor := config("AUDITLOG_CURSOR_SECRET", default=""))
        else None,
        max_inflight=config("AUDITLOG_MAX_INFLIGHT", cast=int, default=64),
        body_idle_timeout_s=config("AUDITLOG_BODY_IDLE_TIMEOUT_S", cast=float, default=30.0),
        body_timeout_s=config("AUDITLOG_BODY_TIMEOUT_S", cast=float, default=120.0),
        cors_origins=tuple(
            o.strip() for o in config("AUDITLOG_CORS_ORIGINS", default="").split(",") if o.strip()
        ),
        public_url=config("AUDITLOG_PUBLIC_URL", default="").rstrip("/") or None,
        viewer_return_urls=tuple(
            u.strip()
            for u in config("AUDITLOG_VIEWER_RETURN_URLS", default="").split(",")
            if u.strip()
        ),
        frame_ancestors=tuple(
            o for o in config("AUDITLOG_FRAME_ANCESTORS", default="").replace(",", " ").split()
        ),
        destination_key=config("AUDITLOG_DESTINATION_KEY", cast=Secret, default=None),
        destination_allow=config("AUDITLOG_DESTINATION_ALLOW", default=""),
        destination_pause_after_s=config(
            "AUDITLOG_DESTINATION_PAUSE_AFTER_S", cast=float, default=3600.0
        ),
        destination_disable_after_s=config(
            "AUDITLOG_DESTINATION_DISABLE_AFTER_S", cast=float, default=7 * 86400.0
        ),
        delivery_interval_s=max(
            config("AUDITLOG_DELIVERY_INTERVAL_S", cast=float, default=1.0), 0.1
        ),
    )
    if overrides:
        from dataclasses import replace

        settings = replace(settings, **overrides)  # type: ignore[arg-type]
    return settings
