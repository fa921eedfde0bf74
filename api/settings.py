"""Configuration, from environment variables only (documented in the README)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path

from domain.alerts import ACK_DEADLINES, parse_deadlines
from domain.cases import RiskLevel


class Mode(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite+aiosqlite:///var/xinqiao.db"
    mode: Mode = Mode.DEVELOPMENT
    host: str = "127.0.0.1"
    port: int = 8000
    key_dir: Path = Path("var/keys")
    token_issuer: str = "xinqiao"  # noqa: S105 - an issuer name, not a secret
    token_audience: str = "xinqiao-api"  # noqa: S105
    token_ttl_seconds: int = 900
    default_page_size: int = 20
    max_page_size: int = 100
    max_query_depth: int = 10
    max_body_bytes: int = 1_000_000
    lookup_limit_per_minute: int = 30
    rate_limit_per_minute: int = 600
    """Requests per token per minute."""
    redis_url: str | None = None
    """Share rate limits between processes through Redis (else each process counts alone)."""
    staff_adhoc: bool | None = None
    """Staff may run ad-hoc operations; default: in development only (else the allow-list)."""
    cors_origins: tuple[str, ...] = ()
    max_query_cost: int = 5000
    ack_deadlines: dict[RiskLevel, timedelta] = field(default_factory=lambda: dict(ACK_DEADLINES))
    """How long a team has to acknowledge an alert, by tier, before it escalates
    (XINQIAO_ACK_DEADLINES="high=30m,medium=24h,low=72h")."""
    alert_feed_seconds: float = 2.0
    """How often each server process looks for new and escalated alerts to push to
    subscribers, where nothing notifies it (SQLite; PostgreSQL while its listening connection
    is down): the live feed's latency there."""
    alert_safety_poll_seconds: float = 30.0
    """On PostgreSQL, where a notification wakes the feed as each alert is routed: how often it
    looks anyway, so an alert whose notification was lost is late by at most this much."""
    scheduler_seconds: float = 60.0
    """How often the server escalates overdue alerts (0: never; use cron and the CLI)."""
    oidc_issuer: str | None = None
    """Accept staff tokens from this external identity provider too (with the two below)."""
    oidc_audience: str | None = None
    oidc_jwks_file: Path | None = None
    cipher_suite: str = "aes256gcm"
    """Field encryption: aes256gcm, or sm4gcm (with HMAC-SM3) for a national-cryptography suite."""
    audit_hash: str = "sha256"
    """Hash of the access-log chain: sha256, or sm3 for a national-cryptography suite."""
    audit_checkpoint_every: int = 10_000
    """Sign a checkpoint each time the chain grows by this many events."""
    small_cell_threshold: int = 10
    """Aggregate counts from 1 to this minus one are shown as "<10" (and protected from
    subtraction): small groups of students must not be identifiable."""
    audit_retention_days: int = 1095
    """PIPL art. 56 keeps processing records three years; never below 180 days (CSL art. 23)."""
    kek_rotation_days: int = 90
    """A key-encryption-key version older than this is due for rotation (``xinqiao keys
    status``): with the backup retention it bounds how long an erased person's data key stays
    recoverable from a backup (docs/encryption.md)."""
    backup_retention_days: int = 30
    """How long database backups are kept: a version that has wrapped nothing for longer is due
    for retirement, as no backup that still exists can need it."""
    notify: NotifySettings = field(default_factory=lambda: NotifySettings())
    """Delivering alert notifications outside the browser (email, SMS, webhooks)."""

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        d = cls()
        try:
            return cls(
                database_url=e.get("XINQIAO_DATABASE_URL", d.database_url),
                mode=Mode(e.get("XINQIAO_MODE", d.mode.value)),
                host=e.get("XINQIAO_HOST", d.host),
                port=int(e.get("XINQIAO_PORT", d.port)),
                key_dir=Path(e.get("XINQIAO_KEY_DIR", str(d.key_dir))),
                token_issuer=e.get("XINQIAO_TOKEN_ISSUER", d.token_issuer),
                token_audience=e.get("XINQIAO_TOKEN_AUDIENCE", d.token_audience),
                token_ttl_seconds=int(e.get("XINQIAO_TOKEN_TTL", d.token_ttl_seconds)),
                default_page_size=int(e.get("XINQIAO_DEFAULT_PAGE_SIZE", d.default_page_size)),
                max_page_size=int(e.get("XINQIAO_MAX_PAGE_SIZE", d.max_page_size)),
                max_query_depth=int(e.get("XINQIAO_MAX_QUERY_DEPTH", d.max_query_depth)),
                max_body_bytes=int(e.get("XINQIAO_MAX_BODY_BYTES", d.max_body_bytes)),
                audit_hash=e.get("XINQIAO_AUDIT_HASH", d.audit_hash),
                cipher_suite=e.get("XINQIAO_CIPHER_SUITE", d.cipher_suite),
                audit_checkpoint_every=int(
                    e.get("XINQIAO_AUDIT_CHECKPOINT_EVERY", d.audit_checkpoint_every)
                ),
                audit_retention_days=int(
                    e.get("XINQIAO_AUDIT_RETENTION_DAYS", d.audit_retention_days)
                ),
                kek_rotation_days=int(e.get("XINQIAO_KEK_ROTATION_DAYS", d.kek_rotation_days)),
                backup_retention_days=int(
                    e.get("XINQIAO_BACKUP_RETENTION_DAYS", d.backup_retention_days)
                ),
                small_cell_threshold=int(
                    e.get("XINQIAO_SMALL_CELL_THRESHOLD", d.small_cell_threshold)
                ),
                rate_limit_per_minute=int(
                    e.get("XINQIAO_RATE_LIMIT_PER_MINUTE", d.rate_limit_per_minute)
                ),
                redis_url=e.get("XINQIAO_REDIS_URL") or None,
                staff_adhoc=_flag(e.get("XINQIAO_STAFF_ADHOC")),
                cors_origins=tuple(
                    o.strip() for o in e.get("XINQIAO_CORS_ORIGINS", "").split(",") if o.strip()
                ),
                max_query_cost=int(e.get("XINQIAO_MAX_QUERY_COST", d.max_query_cost)),
                scheduler_seconds=float(e.get("XINQIAO_SCHEDULER_SECONDS", d.scheduler_seconds)),
                ack_deadlines=parse_deadlines(e.get("XINQIAO_ACK_DEADLINES", "")),
                alert_feed_seconds=float(e.get("XINQIAO_ALERT_FEED_SECONDS", d.alert_feed_seconds)),
                alert_safety_poll_seconds=float(
                    e.get("XINQIAO_ALERT_SAFETY_POLL_SECONDS", d.alert_safety_poll_seconds)
                ),
                oidc_issuer=e.get("XINQIAO_OIDC_ISSUER") or None,
                oidc_audience=e.get("XINQIAO_OIDC_AUDIENCE") or None,
                oidc_jwks_file=Path(e["XINQIAO_OIDC_JWKS_FILE"])
                if e.get("XINQIAO_OIDC_JWKS_FILE")
                else None,
                lookup_limit_per_minute=int(
                    e.get("XINQIAO_LOOKUP_LIMIT_PER_MINUTE", d.lookup_limit_per_minute)
                ),
                notify=NotifySettings.from_env(e),
            )
        except ValueError as exc:
            raise SystemExit(f"invalid configuration: {exc}") from None

    def __post_init__(self) -> None:
        if self.cipher_suite not in ("aes256gcm", "sm4gcm"):
            raise SystemExit(
                "invalid configuration: XINQIAO_CIPHER_SUITE must be aes256gcm or sm4gcm"
            )
        if self.audit_hash not in ("sha256", "sm3"):
            raise SystemExit("invalid configuration: XINQIAO_AUDIT_HASH must be sha256 or sm3")
        if self.small_cell_threshold < 2:
            raise SystemExit(
                "invalid configuration: XINQIAO_SMALL_CELL_THRESHOLD must be at least 2"
            )
        if self.kek_rotation_days < 1 or self.backup_retention_days < 0:
            raise SystemExit(
                "invalid configuration: XINQIAO_KEK_ROTATION_DAYS must be at least 1 and "
                "XINQIAO_BACKUP_RETENTION_DAYS not negative"
            )
        if self.alert_feed_seconds <= 0 or self.alert_safety_poll_seconds <= 0:
            raise SystemExit(
                "invalid configuration: XINQIAO_ALERT_FEED_SECONDS and "
                "XINQIAO_ALERT_SAFETY_POLL_SECONDS must be positive"
            )
        if self.audit_retention_days < 180:
            raise SystemExit(
                "invalid configuration: XINQIAO_AUDIT_RETENTION_DAYS below 180 "
                "(the Cybersecurity Law requires at least six months of logs)"
            )

    @property
    def production(self) -> bool:
        return self.mode is Mode.PRODUCTION

    @property
    def staff_may_run_adhoc(self) -> bool:
        return self.staff_adhoc if self.staff_adhoc is not None else not self.production

    @property
    def sqlite_path(self) -> Path | None:
        prefix = "sqlite+aiosqlite:///"
        if self.database_url.startswith(prefix) and ":memory:" not in self.database_url:
            return Path(self.database_url[len(prefix) :])
        return None


def _flag(value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise SystemExit(f"invalid configuration: expected true or false, got {value!r}")


class SmtpSecurity(StrEnum):
    STARTTLS = "starttls"
    TLS = "tls"
    """Implicit TLS from the first byte (port 465)."""
    NONE = "none"
    """Plain SMTP: a relay on the same host or network only."""


@dataclass(frozen=True)
class NotifySettings:
    """The delivery worker and its channels (``api.delivery``, ``api.channels``). A channel is
    on when its endpoint is set: ``smtp_host`` for email, ``sms_url`` for the SMS gateway,
    ``webhook_hosts`` for group robots. Secrets are kept out of ``repr``."""

    every_seconds: float = 10.0
    """How often the server delivers due notifications (0: never; use cron and the CLI)."""
    max_attempts: int = 6
    backoff_seconds: float = 30.0
    """The first retry's wait; each further failure doubles it (at most an hour)."""
    timeout_seconds: float = 10.0
    """Per request to an SMTP server, the SMS gateway or a webhook."""
    link_base: str = ""
    """The frontend's alert page; a message links to it followed by the alert's global id."""
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_security: SmtpSecurity = SmtpSecurity.STARTTLS
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_from: str = "xinqiao@localhost"
    sms_url: str | None = None
    sms_token: str | None = field(default=None, repr=False)
    webhook_hosts: tuple[str, ...] = ()
    """Hosts (``host`` or ``host:port``) a unit's webhook URL may point at: a contact row
    cannot make the server post to anything else."""

    @classmethod
    def from_env(cls, e: Mapping[str, str]) -> NotifySettings:
        d = cls()
        security = e.get("XINQIAO_SMTP_SECURITY", d.smtp_security.value)
        return cls(
            every_seconds=float(e.get("XINQIAO_NOTIFY_SECONDS", d.every_seconds)),
            max_attempts=int(e.get("XINQIAO_NOTIFY_MAX_ATTEMPTS", d.max_attempts)),
            backoff_seconds=float(e.get("XINQIAO_NOTIFY_BACKOFF_SECONDS", d.backoff_seconds)),
            timeout_seconds=float(e.get("XINQIAO_NOTIFY_TIMEOUT_SECONDS", d.timeout_seconds)),
            link_base=e.get("XINQIAO_NOTIFY_LINK_BASE", d.link_base),
            smtp_host=e.get("XINQIAO_SMTP_HOST") or None,
            smtp_port=int(e.get("XINQIAO_SMTP_PORT", d.smtp_port)),
            smtp_security=SmtpSecurity(security),
            smtp_username=e.get("XINQIAO_SMTP_USERNAME") or None,
            smtp_password=e.get("XINQIAO_SMTP_PASSWORD") or None,
            smtp_from=e.get("XINQIAO_SMTP_FROM", d.smtp_from),
            sms_url=e.get("XINQIAO_SMS_URL") or None,
            sms_token=e.get("XINQIAO_SMS_TOKEN") or None,
            webhook_hosts=tuple(
                h.strip().lower()
                for h in e.get("XINQIAO_WEBHOOK_HOSTS", "").split(",")
                if h.strip()
            ),
        )

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.backoff_seconds <= 0 or self.timeout_seconds <= 0:
            raise SystemExit(
                "invalid configuration: XINQIAO_NOTIFY_MAX_ATTEMPTS must be at least 1 and "
                "XINQIAO_NOTIFY_BACKOFF_SECONDS and XINQIAO_NOTIFY_TIMEOUT_SECONDS positive"
            )
        if self.sms_url is not None and not self.sms_token:
            raise SystemExit("invalid configuration: XINQIAO_SMS_URL needs XINQIAO_SMS_TOKEN")
