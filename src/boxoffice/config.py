"""Settings: the only reader of the environment."""

import contextlib
import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated

import limits
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ConfigError(Exception):
    """The configuration cannot work; the message says what to set."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BOXOFFICE_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./var/boxoffice.db"
    database_pool_size: int = Field(20, ge=1, le=500)  # connections per web process (PostgreSQL)
    redis_url: str | None = None
    redis_prefix: str = "boxoffice:"
    jwt_secret: str | None = None
    var_dir: Path = Path("var")
    public_url: str | None = None

    access_token_ttl: int = Field(900, ge=30, description="seconds")
    refresh_token_ttl: int = Field(30 * 24 * 3600, ge=60, description="seconds")

    rate_limits: bool = True
    rate_limit_login: str = "10/minute"
    rate_limit_register: str = "5/minute"

    hold_ttl: int = Field(600, ge=10, le=24 * 3600, description="seconds a hold keeps its seats")
    payment_window: int = Field(
        900, ge=10, le=24 * 3600, description="seconds a pending payment keeps the seats at most"
    )
    rate_limit_holds: str = "60/minute"  # per account

    # Payment providers (payment-providers.md). With `simulators` on (the default in
    # embedded mode) the simulators are mounted at /_sim/momo and /_sim/mpesa, and a
    # provider whose base URL is unset talks to its simulator on this very site.
    simulators: bool | None = None  # None: on in embedded mode
    simulator_url: str | None = None  # where they are served, when not by this process
    simulator_delay: float = Field(2.0, ge=0, le=600, description="seconds to an outcome")
    simulator_momo_any_currency: bool = True  # the real sandbox takes EUR only
    payment_callback_url: str | None = None  # base of callback URLs; default: public_url
    payment_poll_after: int = Field(
        30, ge=1, description="seconds a pending payment waits for its callback before polling"
    )
    provider_timeout: float = Field(10.0, gt=0, le=120)
    momo_base_url: str | None = None
    momo_target_environment: str = "sandbox"
    momo_api_user: str = "6f3e8a4c-1b2d-4c5e-9f70-8a9b0c1d2e3f"
    momo_api_key: str = "sim-momo-api-key"
    momo_collection_key: str = "sim-momo-collection-key"
    momo_disbursement_key: str = "sim-momo-disbursement-key"
    mpesa_base_url: str | None = None
    mpesa_consumer_key: str = "sim-mpesa-consumer-key"
    mpesa_consumer_secret: str = "sim-mpesa-consumer-secret"  # noqa: S105 (simulator's)
    mpesa_shortcode: str = "174379"
    mpesa_passkey: str = "sim-mpesa-passkey"
    mpesa_transaction_type: str = "CustomerPayBillOnline"
    mpesa_initiator: str = "boxoffice-api"
    # The initiator password encrypted with Safaricom's certificate (the Daraja portal
    # generates it); the reversal API wants it as SecurityCredential.
    mpesa_security_credential: str = "sim-mpesa-security-credential"

    catalog_cache_ttl: float = Field(2.0, ge=0, le=2.0, description="seconds; 0 turns it off")
    cors_origins: Annotated[list[str], NoDecode] = []
    forwarded_allow_ips: str = "127.0.0.1"  # proxies whose X-Forwarded-For is believed
    max_body_bytes: int = 1024 * 1024
    log_level: str = "INFO"
    log_json: bool | None = None  # None: JSON unless stderr is a terminal

    in_process_worker: bool | None = None  # None: on in embedded mode
    worker_poll_interval: float = Field(1.0, gt=0)
    job_lease_seconds: int = Field(300, ge=5)
    job_backoff_seconds: float = Field(2.0, gt=0)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("rate_limit_login", "rate_limit_register", "rate_limit_holds")
    @classmethod
    def _rate(cls, value: str) -> str:
        try:
            limits.parse(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a rate such as '10/minute'") from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("use sqlite+aiosqlite:///path.db or postgresql+asyncpg://user@host/db")
        return value

    @model_validator(mode="after")
    def _secret_outside_embedded_mode(self) -> "Settings":
        if not self.is_embedded and not self.jwt_secret:
            raise ConfigError(
                "BOXOFFICE_JWT_SECRET must be set when the database is PostgreSQL "
                "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        if self.jwt_secret is not None and len(self.jwt_secret) < 32:
            raise ConfigError("BOXOFFICE_JWT_SECRET must be at least 32 characters")
        return self

    @model_validator(mode="after")
    def _real_providers_need_real_credentials(self) -> "Settings":
        """The credential defaults are the simulators'; a real API needs its own."""
        for provider, fields in (
            ("momo", ("api_user", "api_key", "collection_key", "disbursement_key")),
            ("mpesa", ("consumer_key", "consumer_secret", "passkey", "security_credential")),
        ):
            if getattr(self, f"{provider}_base_url") is None:
                continue
            for name in (f"{provider}_{field}" for field in fields):
                if getattr(self, name) == type(self).model_fields[name].default:
                    raise ConfigError(
                        f"BOXOFFICE_{name.upper()} must be set when "
                        f"BOXOFFICE_{provider.upper()}_BASE_URL is"
                    )
        return self

    @property
    def is_embedded(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def run_simulators(self) -> bool:
        return self.is_embedded if self.simulators is None else self.simulators

    @property
    def run_worker_in_process(self) -> bool:
        return self.is_embedded if self.in_process_worker is None else self.in_process_worker

    @cached_property
    def signing_secret(self) -> str:
        """The JWT secret; in embedded mode generated once and kept under var_dir."""
        if self.jwt_secret:
            return self.jwt_secret
        path = self.var_dir / "jwt-secret"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            draft = path.with_name(f"jwt-secret.{secrets.token_hex(4)}")
            with os.fdopen(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
                f.write(secrets.token_urlsafe(48))
            # link() is atomic and refuses to overwrite: processes starting together agree.
            with contextlib.suppress(FileExistsError):
                os.link(draft, path)
            draft.unlink()
        return path.read_text(encoding="utf-8").strip()
