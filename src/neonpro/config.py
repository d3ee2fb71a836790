"""One validated settings object, built lazily from the environment (prefix ``NEONPRO_``).

Nothing here connects or reads a key at import time. ``get_settings()`` builds
the object on first use and caches it; tests build their own ``Settings``.
"""

from __future__ import annotations

import os
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import ClassVar, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class PoolProfile:
    """Connection-pool defaults per environment (each can be overridden one by one)."""

    DEFAULTS: ClassVar[dict[Environment, dict[str, int]]] = {
        Environment.DEVELOPMENT: {
            "pool_size": 5,
            "max_overflow": 5,
            "pool_timeout_s": 10,
            "pool_recycle_s": 1800,
            "statement_timeout_ms": 30_000,
        },
        Environment.TEST: {
            "pool_size": 4,
            "max_overflow": 4,
            "pool_timeout_s": 10,
            "pool_recycle_s": 600,
            "statement_timeout_ms": 60_000,
        },
        Environment.PRODUCTION: {
            "pool_size": 20,
            "max_overflow": 10,
            "pool_timeout_s": 5,
            "pool_recycle_s": 1800,
            "statement_timeout_ms": 15_000,
        },
    }


def _default_data_dir() -> Path:
    if os.geteuid() == 0:
        # root's home is not traversable by the unprivileged account that runs the server
        return Path("/var/lib/neonpro")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "neonpro"


def _default_embedded_dir() -> Path:
    return _default_data_dir() / "embedded"


class Settings(BaseSettings):
    """Everything neonpro reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="NEONPRO_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: Environment = Environment.DEVELOPMENT

    # One login per role (adapters/db/logins.py): the owner's URL runs migrations, the
    # application's every tenant transaction, the service's cross-clinic jobs, the legal
    # hold's reads of blocked records. Production sets each. Elsewhere one URL is enough:
    # a superuser's NEONPRO_DATABASE_URL, from which the others are derived.
    database_url: SecretStr | None = None
    app_database_url: SecretStr | None = None
    service_database_url: SecretStr | None = None
    legal_hold_database_url: SecretStr | None = None
    replica_database_url: SecretStr | None = None

    owner_role: str = Field(default="neonpro_owner", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    app_role: str = Field(default="neonpro_app", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    service_role: str = Field(default="neonpro_service", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    legal_hold_role: str = Field(default="neonpro_legal_hold",
                                 pattern=r"^[a-z_][a-z0-9_]{0,62}$")

    pool_size: int | None = Field(default=None, ge=1, le=200)
    max_overflow: int | None = Field(default=None, ge=0, le=200)
    pool_timeout_s: int | None = Field(default=None, ge=1, le=300)
    pool_recycle_s: int | None = Field(default=None, ge=30)
    statement_timeout_ms: int | None = Field(default=None, ge=100)
    connect_timeout_s: int = Field(default=5, ge=1, le=120)
    retry_attempts: int = Field(default=3, ge=1, le=10)
    retry_base_delay_s: float = Field(default=0.05, gt=0, le=5)
    # HTTP API: a request that has not started its answer by then gets 503 request_timeout
    # (its transaction rolled back unless the commit had begun; docs/reliability.md)
    request_timeout_s: float = Field(default=30.0, ge=0.5, le=600)
    # readiness: a write (one commit token) must commit within this, or /health/ready is 503
    # (commits stalled: a synchronous standby that does not answer, a full WAL disk, ...)
    readiness_commit_timeout_ms: int = Field(default=2000, ge=100, le=60_000)
    # /health/details (the database's version, roles, revision and each check) answers only
    # "Authorization: Bearer <this>", or, without one set, clients on the loopback address;
    # /health/ready tells everyone else ready or not, nothing more
    operator_token: SecretStr | None = None
    # Idempotency-Key answers are kept this long (at least a day), then pruned
    idempotency_ttl_hours: int = Field(default=24, ge=24, le=24 * 30)

    embedded_dir: Path = Field(default_factory=_default_embedded_dir)
    embedded_os_user: str | None = None

    # Field encryption (AES-256-GCM) and blind indexes (HMAC-SHA256). Keys never live in the
    # database. Either NEONPRO_KEY_FILE (JSON, see docs/security.md) or the three below.
    # encryption_keys: "kid1:<base64 32 bytes>,kid2:<...>"; active_key_id picks the one
    # that encrypts new values; the others only decrypt (key rotation).
    key_file: Path | None = None
    encryption_keys: SecretStr | None = None
    active_key_id: str | None = None
    blind_index_key: SecretStr | None = None
    # Audit keys (HMAC of the audit chains, checkpoints and retention cuts; docs/audit.md):
    # "a1:<base64 32 bytes>,a2:<...>" (or "audit_keys" in the key file); the active one
    # seals new events, the others verify what they sealed. Production requires them.
    audit_keys: SecretStr | None = None
    active_audit_key_id: str | None = None

    # HTTP API authentication: HS256 with a shared secret, or RS256 with a key pair (the
    # public key verifies; the private key, where this process issues tokens, signs).
    jwt_algorithm: str = Field(default="HS256", pattern=r"^(HS256|RS256)$")
    jwt_secret: SecretStr | None = None
    jwt_private_key_file: Path | None = None
    jwt_public_key_file: Path | None = None
    jwt_issuer: str = "neonpro"
    token_ttl_minutes: int = Field(default=60, ge=1, le=24 * 60)
    # sign-in throttling (domain/signin.py, docs/security.md): attempts allowed per window
    # for one address and e-mail together, one e-mail from untrusted addresses, one
    # address; the first block (doubled at each next one, up to a day); how long a pair
    # that signed in stays trusted
    login_max_failures: int = Field(default=5, ge=1, le=100)
    login_account_max_failures: int = Field(default=20, ge=1, le=10_000)
    login_address_max_failures: int = Field(default=50, ge=1, le=100_000)
    login_failure_window_minutes: int = Field(default=60, ge=1, le=24 * 60)
    login_lockout_minutes: int = Field(default=15, ge=1, le=24 * 60)
    login_trust_days: int = Field(default=90, ge=1, le=3660)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)

    # Logical backups (docs/operations.md): where they go, optional AES-256-GCM encryption
    # of the files (base64 of 32 bytes), and how many daily/weekly/monthly ones prune keeps.
    backup_dir: Path = Field(default_factory=lambda: _default_data_dir() / "backups")
    backup_key: SecretStr | None = None
    backup_keep_daily: int = Field(default=7, ge=1, le=366)
    backup_keep_weekly: int = Field(default=4, ge=0, le=520)
    backup_keep_monthly: int = Field(default=12, ge=0, le=1200)
    # pgBackRest (point-in-time recovery): its repository and configuration directory.
    pitr_dir: Path = Field(default_factory=lambda: _default_data_dir() / "pitr")

    # Signed checkpoints of every chain's head (docs/audit.md), taken by `neonpro serve`
    # every interval and by `neonpro audit checkpoint` (cron): written to the directory
    # (keep it where the database's operators cannot write), and optionally POSTed to an
    # HTTP endpoint and sent to syslog ("/dev/log" or "host:port", UDP). Events sealed
    # after the newest checkpoint can vanish unnoticed: the interval bounds that window.
    audit_checkpoint_dir: Path = Field(default_factory=lambda: _default_data_dir() / "checkpoints")
    audit_checkpoint_interval_s: float = Field(default=300.0, ge=5, le=86_400)
    audit_checkpoint_url: str | None = Field(default=None, pattern=r"^https?://")
    audit_checkpoint_syslog: str | None = None

    log_level: str = "INFO"

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> Self:
        if self.environment is Environment.PRODUCTION and self.database_url is None:
            msg = "production needs NEONPRO_DATABASE_URL: the embedded database is for development"
            raise ValueError(msg)
        if self.environment is Environment.PRODUCTION and (
                self.app_database_url is None or self.service_database_url is None):
            msg = ("production needs NEONPRO_APP_DATABASE_URL and NEONPRO_SERVICE_DATABASE_URL: "
                   "one login per role, none derived from the owner's")
            raise ValueError(msg)
        roles = {self.owner_role, self.app_role, self.service_role, self.legal_hold_role}
        if len(roles) != 4:  # noqa: PLR2004
            msg = "owner, application, service and legal-hold roles must be different roles"
            raise ValueError(msg)
        return self

    def pool_setting(self, name: str) -> int:
        """A pool setting: the explicit value, or the environment's default."""
        explicit = getattr(self, name)
        if explicit is not None:
            return int(explicit)
        return PoolProfile.DEFAULTS[self.environment][name]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, built on first use."""
    return Settings()
