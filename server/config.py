"""Settings, read from ``SKILLSHARE_*`` environment variables and an optional
TOML file named by ``SKILLSHARE_CONFIG``; validated once at start-up."""

from __future__ import annotations

import os
import secrets
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.exceptions import SettingsError

from .private_files import private_dir, secure_tree, write_private_file
from .redis_keys import DEFAULT_PREFIX as DEFAULT_REDIS_KEY_PREFIX
from .redis_keys import PREFIX_PATTERN as REDIS_KEY_PREFIX_PATTERN


class ConfigError(Exception):
    """A bad setting; the message is one line naming the variable."""


MIN_BACKUP_KEY_CHARS = 16  # a passphrase; scrypt stretches it per archive
StrList = Annotated[list[str], NoDecode]
DATA_KEY_FILE = "data_key"  # development only: the generated SKILLSHARE_DATA_KEY

#: Shortest TURN credential lifetime accepted. Production keeps the default
#: (an hour); a few seconds let tests watch credentials expire mid-call.
TURN_TTL_MIN_S = 5


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class _TomlSource(PydanticBaseSettingsSource):
    """Values from the TOML file named by ``SKILLSHARE_CONFIG`` (lowest priority
    after the environment)."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        path = os.environ.get("SKILLSHARE_CONFIG")
        self._data: dict[str, Any] = {}
        if path:
            try:
                with open(path, "rb") as fh:
                    self._data = tomllib.load(fh)
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"SKILLSHARE_CONFIG: cannot read {path}: {exc}") from exc

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if k in self.settings_cls.model_fields}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SKILLSHARE_", extra="ignore", populate_by_name=True
    )

    env: Literal["development", "production", "test"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_url: str | None = None  # base URL used in mailed links
    data_dir: Path = Path("./var")
    mongo_url: str | None = None
    embedded_db_port: int = Field(0, ge=0, le=65535)  # 0: any free loopback port
    # connections to the embedded database's process (a thread each there):
    # few do the same work with less CPU (docs/embedded-database.md)
    embedded_db_pool_size: int = Field(4, ge=1, le=100)
    mongo_db: str = "skillshare"
    redis_url: str | None = None
    redis_key_prefix: str = Field(DEFAULT_REDIS_KEY_PREFIX, pattern=REDIS_KEY_PREFIX_PATTERN)  # every key and channel
    # Socket.IO fan-out between nodes: "sharded" (a channel per room, SPUBLISH/SSUBSCRIBE,
    # Redis >= 7) or "broadcast" (every emit on one channel: the previous behaviour).
    fanout_mode: Literal["sharded", "broadcast"] = "sharded"
    secret_key: StrList | None = None  # newest first; older keys still verify
    data_key: StrList | None = None  # field encryption at rest; newest first, all decrypt
    jwt_issuer: str = "skillshare"
    jwt_audience: str = "skillshare-api"
    access_token_ttl: int = Field(900, ge=10, le=86400)
    refresh_token_ttl: int = Field(30 * 86400, ge=60)
    email_token_ttl: int = Field(48 * 3600, ge=60)
    password_reset_ttl: int = Field(30 * 60, ge=60)
    password_min_length: int = Field(10, ge=6, le=128)
    password_max_length: int = Field(256, ge=16, le=4096)
    password_hash_time_cost: int = Field(3, ge=1, le=20)
    password_hash_memory_kib: int = Field(64 * 1024, ge=8, le=4 * 1024 * 1024)
    password_hash_workers: int = Field(0, ge=0, le=256)  # 0: one less than the cores, at least 1
    password_hash_queue: int = Field(16, ge=0, le=100_000)  # waiting jobs beyond: 503
    require_verified_email_for: StrList = Field(default_factory=list)
    smtp_url: str | None = None
    mail_from: str = "Skill Share <no-reply@skillshare.local>"
    turn_urls: StrList = Field(default_factory=list)
    turn_secret: str | None = None
    turn_ttl: int = Field(3600, ge=TURN_TTL_MIN_S, le=86400)
    stun_urls: StrList = Field(default_factory=list)
    sentry_dsn: str | None = None
    cors_origins: StrList = Field(default_factory=list)
    log_level: str = "INFO"
    rate_limits: Literal["on", "off"] = "on"
    register_limit: str = "30/hour"
    login_account_limit: str = "10/15minutes"
    login_ip_limit: str = "100/15minutes"
    forgot_password_limit: str = "5/hour"
    api_limit: str = "600/minute"
    client_error_limit: str = "30/minute"  # web app error reports per IP (docs/webapp.md)
    room_create_limit: str = "30/hour"
    listing_create_limit: str = "30/hour"  # listings one user may publish
    search_limit: str = "120/minute"  # new relevance searches per IP
    request_create_limit: str = "30/hour"  # skill requests one learner may send (each mails)
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    deleted_user_grace_days: int = Field(30, ge=0)
    trusted_proxies: int = Field(0, ge=0, le=5)  # X-Forwarded-For hops to trust
    shutdown_timeout: float = Field(10.0, gt=0)  # aiohttp reads 0 as "wait forever"
    drain_timeout: float = Field(10.0, gt=0, le=3600)  # SIGTERM: sockets told, in-flight acks
    bus_canary_interval: float = Field(3.0, gt=0, le=60)  # node heartbeat = canary to itself
    bus_canary_timeout: float = Field(10.0, gt=0, le=600)  # no canary back: deaf, re-subscribe
    # real-time limits
    socket_max_payload: int = Field(64 * 1024, ge=1024)
    socket_event_rate: str = "20/second"
    socket_event_burst: int = Field(60, ge=1)
    socket_flood_limit: int = Field(100, ge=1)  # refused events in 10 s before disconnect
    socket_max_rooms: int = Field(500, ge=1)  # rooms one socket may join
    socket_max_per_user: int = Field(20, ge=1)  # sockets one user may hold on one node
    socket_max_presence_subscriptions: int = Field(2000, ge=1)
    socket_expiry_warning: float = Field(60.0, ge=1)  # session:expiring this long before
    socket_ping_interval: float = Field(25.0, gt=0)
    socket_ping_timeout: float = Field(20.0, gt=0)
    socket_compression: bool = False  # offer permessage-deflate on websockets
    socket_compression_threshold: int = Field(1024, ge=0)  # smaller messages go out plain
    socket_send_buffer_limit: int = Field(1024 * 1024, ge=4096)  # unsent bytes -> slow_consumer
    socket_send_queue_limit: int = Field(1000, ge=10)  # queued packets -> slow_consumer
    typing_interval: float = Field(2.0, ge=0)  # typing:true relayed at most this often
    message_batch_max: int = Field(64, ge=1, le=1000)  # sends to one room per insert; 1: no batching
    presence_heartbeat_interval: float = Field(5.0, gt=0)
    presence_sweep_interval: float = Field(5.0, gt=0)
    presence_node_ttl: float = Field(15.0, gt=0)  # dead node's users offline after ttl+sweep
    max_relayed_calls: int = Field(20, ge=0)  # per node; 0 turns the media relay off
    call_ring_timeout: float = Field(30.0, gt=0, le=600)  # ringing this long -> missed
    call_max_duration: float = Field(12 * 3600, ge=60)  # call state is kept at most this long
    call_relay_timeout: float = Field(10.0, gt=0)  # wait for a relay answer from another node
    call_invite_limit: str = "30/minute"  # call:invite per caller
    call_relay_allow_private: bool = False  # the relay may contact private/CGNAT/ULA addresses (LAN)
    call_reconnect_grace: float = Field(20.0, ge=0, le=300)  # s a participant may be away; 0 = end at once
    call_stats_limit: str = "20/minute"  # call:stats per participant (periodic reports included)
    delivery_report_limit: str = "6/minute"  # delivery:report per user (docs/realtime.md)
    # Email digests for people who were away (docs/accounts.md, "Email digest")
    digest_enabled: bool = True  # the sweep that sends them (people opt out in their profile)
    digest_interval: float = Field(86400.0, ge=60)  # s: at most one digest per person this often
    digest_delay: float = Field(900.0, ge=0)  # s away before a digest is considered
    digest_sweep_interval: float = Field(60.0, gt=0)  # s between checks for due digests
    max_blocks_per_user: int = Field(1000, ge=1)  # people one user may block at once
    # Hot reads (listing pages, listings, reviews, people, each person's
    # rooms, requests, markers and blocks): entries at most; seconds an entry
    # lives (every write drops what it changes on every node and a bus
    # reconnect drops everything, so this bounds only a failed publish or a
    # tool writing to the database directly). 0 turns the cache off.
    # docs/marketplace.md.
    read_cache_size: int = Field(10000, ge=0, le=1_000_000)
    read_cache_ttl: float = Field(120.0, ge=0, le=3600)
    # AI-assisted matching (docs/marketplace.md, "Semantic ranking with Gemini")
    ai_provider: Literal["local", "gemini"] = "local"
    gemini_api_key: str | None = None
    gemini_embed_model: str = "gemini-embedding-001"
    gemini_model: str = "gemini-2.5-flash"
    gemini_base_url: str | None = None  # proxies and tests; unset = Google's endpoint
    ai_timeout: float = Field(2.0, gt=0, le=60)  # s; past it a request ranks locally
    ai_user_limit: str = "60/hour"  # Gemini calls made for one user's searches and matches
    ai_global_limit: str = "2000/hour"  # Gemini calls this deployment makes (texts embedded)
    # Sign-in providers (docs/accounts.md): names here, and per name the
    # SKILLSHARE_OIDC_<NAME>_* variables (read by server/auth/oidc/providers.py)
    oidc_providers: StrList = Field(default_factory=list)
    oidc: dict[str, dict[str, str]] = Field(default_factory=dict)  # per-name values (TOML/tests)
    oidc_flow_ttl: int = Field(600, ge=60, le=86400)  # s a sign-in at a provider may take
    oidc_http_timeout: float = Field(10.0, gt=0, le=120)  # s per call to a provider
    oidc_start_limit: str = "30/minute"  # sign-ins (and links) started per IP; each stores a flow
    # Backups (docs/operations.md): scheduled ones only on the embedded default
    backup_dir: Path | None = None  # unset: no scheduled backups
    backup_interval: float = Field(86400.0, ge=1)  # s between scheduled backups
    backup_keep: int = Field(7, ge=1)  # newest scheduled archives kept; older ones deleted
    backup_key: str | None = None  # encrypts archives (AES-256-GCM, key from scrypt)

    @field_validator(
        "secret_key", "cors_origins", "turn_urls", "stun_urls",
        "require_verified_email_for", "oidc_providers", "data_key", mode="before",
    )
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator(
        "register_limit", "login_account_limit", "login_ip_limit", "forgot_password_limit",
        "api_limit", "client_error_limit", "room_create_limit", "request_create_limit", "call_invite_limit",
        "call_stats_limit", "delivery_report_limit",
        "listing_create_limit", "search_limit", "ai_user_limit", "ai_global_limit",
        "socket_event_rate", "oidc_start_limit",
    )
    @classmethod
    def _rate_limit_spec(cls, value: str) -> str:
        from limits import parse

        try:
            parse(value)
        except ValueError:
            raise ValueError("must be a rate like 30/minute") from None
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "redis+sentinel://",
                                           "redis+cluster://", "unix://")):
            raise ValueError("must start with redis://, rediss://, redis+sentinel:// or redis+cluster://")
        return value or None

    @field_validator("mongo_url")
    @classmethod
    def _mongo_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("must start with mongodb:// or mongodb+srv://")
        return value or None

    @field_validator("smtp_url")
    @classmethod
    def _smtp_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("smtp://", "smtps://")):
            raise ValueError("must start with smtp:// or smtps://")
        return value or None

    @field_validator("secret_key", "data_key")
    @classmethod
    def _key_length(cls, value: list[str] | None) -> list[str] | None:
        if value:
            for key in value:
                if len(key) < 32:
                    raise ValueError("each key must be at least 32 characters")
        return value or None

    @field_validator("backup_key")
    @classmethod
    def _backup_key_length(cls, value: str | None) -> str | None:
        if value and len(value) < MIN_BACKUP_KEY_CHARS:
            raise ValueError(f"must be at least {MIN_BACKUP_KEY_CHARS} characters")
        return value or None

    @model_validator(mode="after")
    def _production(self) -> Settings:
        if self.env == "production" and not self.secret_key:
            raise ValueError("SKILLSHARE_SECRET_KEY is required when SKILLSHARE_ENV=production")
        if self.env == "production" and not self.data_key:
            raise ValueError("SKILLSHARE_DATA_KEY is required when SKILLSHARE_ENV=production")
        if self.ai_provider == "gemini" and not self.gemini_api_key:
            raise ValueError(
                "SKILLSHARE_GEMINI_API_KEY is required when SKILLSHARE_AI_PROVIDER=gemini")
        if self.bus_canary_timeout <= self.bus_canary_interval:
            raise ValueError("SKILLSHARE_BUS_CANARY_TIMEOUT must exceed SKILLSHARE_BUS_CANARY_INTERVAL")
        if self.password_min_length > self.password_max_length:
            raise ValueError("SKILLSHARE_PASSWORD_MIN_LENGTH exceeds SKILLSHARE_PASSWORD_MAX_LENGTH")
        from .auth.oidc.providers import OidcConfigError, load_providers

        try:
            load_providers(self.oidc_providers, self.oidc, os.environ,
                           production=self.env == "production")
        except OidcConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    def oidc_provider_configs(self) -> list[Any]:
        """The sign-in providers (server/auth/oidc/providers.py), validated."""
        from .auth.oidc.providers import load_providers

        return load_providers(self.oidc_providers, self.oidc, os.environ,
                              production=self.env == "production")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls))

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def rate_limits_enabled(self) -> bool:
        return self.rate_limits == "on"

    def signing_keys(self) -> list[str]:
        """The JWT/HMAC keys, newest first. In development with no key set, a
        key is generated once and kept in the data dir."""
        if self.secret_key:
            return list(self.secret_key)
        return [self._development_key("secret_key")]

    def data_keys(self) -> list[str]:
        """The master keys for fields encrypted at rest, newest first. In
        development with no key set, a key is generated once and kept in the
        data dir (0600), like the signing key."""
        if self.data_key:
            return list(self.data_key)
        return [self._development_key(DATA_KEY_FILE)]

    def _development_key(self, name: str) -> str:
        """The key kept in ``<data dir>/<name>`` (0600), made on first use."""
        path = self.data_dir / name
        private_dir(self.data_dir)
        if path.exists():
            secure_tree(path)
            return path.read_text().strip()
        key = secrets.token_urlsafe(48)
        write_private_file(path, key.encode())
        return key


def load_settings(**overrides: Any) -> Settings:
    """Build Settings from the environment; raise ConfigError with one line
    naming the first bad variable."""
    try:
        return Settings(**overrides)
    except SettingsError as exc:
        raise ConfigError(str(exc).replace('field "', 'field SKILLSHARE_').upper()) from None
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = err.get("loc") or ()
        name = f"SKILLSHARE_{str(loc[0]).upper()}" if loc else "configuration"
        msg = err.get("msg", "invalid value").removeprefix("Value error, ")
        if msg.startswith("SKILLSHARE_"):
            raise ConfigError(msg) from None
        raise ConfigError(f"{name}: {msg}") from None
