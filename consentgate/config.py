"""Settings: defaults, then ``CONSENTGATE_*`` environment variables, then an explicit mapping.

Validated once, when the app or a command starts; nobody else reads ``os.environ``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from consentgate.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_POLICY = "policies/default.yaml"
PACKAGED_POLICY = Path(__file__).resolve().parents[1] / DEFAULT_POLICY


class Settings(BaseSettings):
    """Every setting consentgate reads, with its environment variable ``CONSENTGATE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="CONSENTGATE_", extra="ignore", frozen=True)

    env: Literal["development", "production", "test"] = "development"
    database_url: str = "sqlite:///consentgate.db"
    # A read replica (a hot standby) the four reports read from; unset: the database itself.
    reports_database_url: str | None = None
    policy: str = DEFAULT_POLICY
    public_url: str = "http://localhost:8000"
    secret_key: SecretStr | None = None
    twilio_auth_token: SecretStr | None = None
    telnyx_public_key: str | None = None
    webhook_secret: SecretStr | None = None
    auto_migrate: bool | None = None
    secret_file: str = ".consentgate-secret"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # API.md: batches of up to 10,000 items; a deployment may allow fewer.
    max_batch: int = Field(10_000, ge=1, le=10_000)
    # Whether the decision log rows of plain checks wait for the disk at commit (see ``store.db.Store``).
    decision_log_sync: Literal["deferred", "commit"] = "deferred"
    # Processes a large batch of plain eligibility checks is split among; unset: one per core.
    batch_processes: int | None = Field(None, ge=1)

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("public_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @property
    def policy_path(self) -> Path:
        path = Path(self.policy)
        if not path.exists() and self.policy == DEFAULT_POLICY and PACKAGED_POLICY.exists():
            return PACKAGED_POLICY
        return path

    @property
    def migrate_on_start(self) -> bool:
        """Development migrates on first start; production migrates as a one-off unless told to."""
        return self.auto_migrate if self.auto_migrate is not None else self.env != "production"


def load_settings(overrides: Mapping[str, Any] | None = None) -> Settings:
    """Build and check the settings; a problem raises ConfigError naming the variable."""
    try:
        settings = Settings(**{k.lower(): v for k, v in (overrides or {}).items()})
    except ValidationError as exc:
        problems = "; ".join(
            f"CONSENTGATE_{str(err['loc'][0]).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(problems) from None
    if settings.secret_key is not None and not settings.secret_key.get_secret_value().strip():
        settings = settings.model_copy(update={"secret_key": None})    # set but blank is not set
    if settings.secret_key is None:
        if settings.env == "production":
            raise ConfigError(
                "CONSENTGATE_SECRET_KEY is not set: production refuses to start without it "
                "(it signs unsubscribe tokens, receipts and outbound webhooks)"
            )
        settings = settings.model_copy(update={"secret_key": SecretStr(_local_secret(settings))})
    return settings


def _local_secret(settings: Settings) -> str:
    """A development secret, generated once and kept in a local file so links stay valid."""
    path = Path(settings.secret_file)
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    secret = secrets.token_urlsafe(48)
    path.write_text(secret + "\n", encoding="utf-8")
    path.chmod(0o600)
    log.warning(
        "CONSENTGATE_SECRET_KEY is not set: generated a development secret in %s "
        "(set CONSENTGATE_SECRET_KEY in production)", path.resolve()
    )
    return secret
