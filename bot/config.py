"""Configuration from the environment and a .env file (docs/architecture.md, "Contracts"), validated at start."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

_SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


class ConfigError(Exception):
    """The configuration is invalid; the message lists every problem by variable name."""


def _loopback_http(url: str) -> bool:
    """An http:// URL whose host is this machine (127.0.0.0/8, localhost or [::1])."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    data_dir: Path = Field(Path("antam-data"), alias="ANTAM_DATA_DIR")
    database_url: str | None = Field(None, alias="ANTAM_DATABASE_URL")
    master_key: SecretStr | None = Field(None, alias="ANTAM_MASTER_KEY")
    # Where the key file lives; by default inside the data dir, so a copy of that dir is a
    # copy of everything. Point it elsewhere (another disk, a mounted secret) to split them.
    master_key_file: Path | None = Field(None, alias="ANTAM_MASTER_KEY_FILE")
    http_host: str = Field("127.0.0.1", alias="ANTAM_HTTP_HOST", min_length=1)
    http_port: Annotated[int, Field(ge=1, le=65535)] = Field(8080, alias="ANTAM_HTTP_PORT")
    public_url: str | None = Field(None, alias="ANTAM_PUBLIC_URL")
    retention_days: Annotated[int, Field(ge=1, le=3650)] = Field(180, alias="ANTAM_RETENTION_DAYS")
    # A counsellor chat's messages are erased at the latest this long after the last one.
    counselling_transcript_hours: Annotated[int, Field(ge=1, le=72)] = Field(24, alias="ANTAM_COUNSELLING_TRANSCRIPT_HOURS")
    # How long answering a person may wait for the database (pool, connect, statements, commit)
    # before the safety answers and hotlines are sent without it.
    db_timeout_seconds: Annotated[float, Field(ge=0.5, le=60)] = Field(3.0, alias="ANTAM_DB_TIMEOUT_SECONDS")
    log_level: str = Field("INFO", alias="ANTAM_LOG_LEVEL")
    log_format: str = Field("text", alias="ANTAM_LOG_FORMAT")
    # Reverse proxies whose X-Forwarded-For is believed, for per-address rate limits only.
    trusted_proxies: str | None = Field(None, alias="ANTAM_TRUSTED_PROXIES")
    # Other origins (scheme://host[:port]) whose pages may talk to the web chat, besides its own.
    webchat_origins: str | None = Field(None, alias="ANTAM_WEBCHAT_ORIGINS")
    # How wide an IPv4 block the limits on new people, referral codes and staff logins count
    # in (IPv6 always counts per /64); 32 = per address.
    ipv4_block_prefix: Annotated[int, Field(ge=16, le=32)] = Field(24, alias="ANTAM_IPV4_BLOCK_PREFIX")
    # New people counted towards the indicators per address block and hour (web chat).
    new_people_per_hour: Annotated[int, Field(ge=1, le=100_000)] = Field(20, alias="ANTAM_NEW_PEOPLE_PER_HOUR")
    # Referral codes issued per address block and hour (web chat).
    codes_per_hour: Annotated[int, Field(ge=1, le=100_000)] = Field(10, alias="ANTAM_CODES_PER_HOUR")
    # Networks whose direct requests may read /metrics ("none": nobody); never through a proxy.
    metrics_allow: str = Field("127.0.0.1/32, ::1/128", alias="ANTAM_METRICS_ALLOW")
    telegram_bot_token: SecretStr | None = Field(None, alias="TELEGRAM_BOT_TOKEN")
    telegram_api_base_url: str = Field("https://api.telegram.org/bot", alias="TELEGRAM_API_BASE_URL")
    telegram_webhook_secret: SecretStr | None = Field(None, alias="TELEGRAM_WEBHOOK_SECRET")
    zalo_app_id: str | None = Field(None, alias="ZALO_APP_ID")
    zalo_oa_secret_key: SecretStr | None = Field(None, alias="ZALO_OA_SECRET_KEY")
    zalo_access_token: SecretStr | None = Field(None, alias="ZALO_ACCESS_TOKEN")
    zalo_refresh_token: SecretStr | None = Field(None, alias="ZALO_REFRESH_TOKEN")
    zalo_api_base_url: str = Field("https://openapi.zalo.me", alias="ZALO_API_BASE_URL")
    zalo_oauth_base_url: str = Field("https://oauth.zaloapp.com", alias="ZALO_OAUTH_BASE_URL")
    # The app's secret key for OAuth; most set-ups use the OA secret key, which is the default.
    zalo_app_secret_key: SecretStr | None = Field(None, alias="ZALO_APP_SECRET_KEY")
    # Seconds an event's timestamp may be from now (either way) and still be handled; older
    # signed events are answered 200 and dropped. Well below the 7 days dedupe keys are kept.
    zalo_event_max_age: Annotated[int, Field(ge=60, le=86400)] = Field(3600, alias="ZALO_EVENT_MAX_AGE")

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str | None) -> str | None:
        if not value:
            return None
        for plain, driver in (
            ("postgres://", "postgresql+asyncpg://"),
            ("postgresql://", "postgresql+asyncpg://"),
            ("sqlite://", "sqlite+aiosqlite://"),
        ):
            if value.startswith(plain):
                return driver + value[len(plain) :]
        if not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError("use postgresql+asyncpg://USER@HOST/DB or sqlite+aiosqlite:///PATH")
        return value

    @field_validator("public_url", "telegram_api_base_url", "zalo_api_base_url", "zalo_oauth_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if not value.endswith("/bot") else value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return level

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str | None) -> str | None:
        from bot.client_address import parse_networks

        parse_networks(value)
        return value or None

    @property
    def proxy_networks(self) -> tuple[Any, ...]:
        from bot.client_address import parse_networks

        return parse_networks(self.trusted_proxies)

    @field_validator("webchat_origins")
    @classmethod
    def _origins(cls, value: str | None) -> str | None:
        for origin in (value or "").split(","):
            origin = origin.strip()
            if origin and not re.match(r"^https?://[A-Za-z0-9.\[\]:-]+$", origin):
                raise ValueError(f"'{origin}' is not an origin (scheme://host[:port], no path)")
        return value or None

    @property
    def allowed_origins(self) -> frozenset[str]:
        """The web chat's own origin (from ANTAM_PUBLIC_URL, when set) and ANTAM_WEBCHAT_ORIGINS."""
        found = {o.strip().rstrip("/").lower() for o in (self.webchat_origins or "").split(",") if o.strip()}
        if self.public_url:
            match = re.match(r"^(https?://[^/]+)", self.public_url)
            if match:
                found.add(match.group(1).lower())
        return frozenset(found)
    @field_validator("metrics_allow")
    @classmethod
    def _metrics_networks(cls, value: str) -> str:
        from bot.client_address import parse_networks

        if value.strip().lower() != "none":
            parse_networks(value)
        return value

    @property
    def metrics_networks(self) -> tuple[Any, ...]:
        from bot.client_address import parse_networks

        return () if self.metrics_allow.strip().lower() == "none" else parse_networks(self.metrics_allow)

    @field_validator("log_format")
    @classmethod
    def _format(cls, value: str) -> str:
        if value.lower() not in {"text", "json"}:
            raise ValueError("must be text or json")
        return value.lower()

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _secret_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _SECRET_TOKEN.match(value.get_secret_value()):
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @model_validator(mode="after")
    def _public_url_is_https(self) -> Settings:
        # docs/architecture.md, "Contracts": https, or plain http on a loopback host (a local Bot API server, tests).
        if self.public_url and not self.public_url.startswith("https://") and not _loopback_http(self.public_url):
            raise ValueError(
                "ANTAM_PUBLIC_URL must start with https:// (webhooks need TLS); "
                "http:// is accepted only for a loopback host (127.0.0.1, localhost, [::1])"
            )
        return self

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{(self.data_dir / 'antam.db').as_posix()}"

    @property
    def key_file(self) -> Path:
        return self.master_key_file or self.data_dir / "master.key"

    @property
    def key_beside_data(self) -> bool:
        """The master key is a file in the data dir beside the SQLite database (the embedded default)."""
        if self.master_key is not None or not self.effective_database_url.startswith("sqlite"):
            return False
        try:
            return self.key_file.resolve().is_relative_to(self.data_dir.resolve())
        except OSError:
            return True


def load_settings(environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")) -> Settings:
    """Read settings from a .env file, overridden by the real environment."""
    values: dict[str, Any] = {}
    if env_file is not None and env_file.is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ if environ is None else environ)
    known = {field.alias for field in Settings.model_fields.values() if field.alias}
    # An empty variable means "not set", as in most shells' habits.
    chosen = {k: v for k, v in values.items() if k in known and v != ""}
    try:
        return Settings.model_validate(chosen)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "configuration"
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"  {name}: {message}")
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)) from None
