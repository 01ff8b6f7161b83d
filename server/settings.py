"""Server settings: one class, every field also read from `NPS_EDGE_<NAME>`."""

from __future__ import annotations

import ipaddress

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DB = "sqlite:///./var/nps-edge.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NPS_EDGE_", extra="ignore")

    db: str = Field(default=DEFAULT_DB, description="SQLAlchemy URL; SQLite file by default")
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    relay_dir: str | None = Field(
        default=None,
        description="where workers find each other's live streams (set by `nps-edge server`)",
    )

    # Health join (docs/server.md).
    join_window_s: float = Field(
        default=900.0, description="telemetry older than this is not joined"
    )
    offline_after_s: float = Field(
        default=900.0, description="no presence and silent this long: offline"
    )

    # Threshold alerts.
    site_nps_threshold: float = 0.0
    site_nps_last_n: int = 50
    offline_alert_s: float = 3600.0
    battery_low_mv: int = 3400
    alert_check_interval_s: float = 30.0

    # Webhooks for new alerts.
    webhook_urls: list[str] = Field(default_factory=list)
    webhook_secret: str = ""
    webhook_attempts: int = 5
    webhook_backoff_s: float = 1.0

    # The fleet (issue 14, docs/server.md "Fleet").
    command_key: str | None = Field(
        default=None,
        description="file of the Ed25519 key that signs device commands (made 0600 on first"
        " use); default command.key beside the SQLite database, else in the working directory",
    )
    release_pub: str | None = Field(
        default=None, description="base64 Ed25519 public key releases must be signed with"
    )
    canary_interval_s: float = Field(
        default=60.0, gt=0, description="how often rollouts are judged and widened, seconds"
    )

    # Cases and e-mail (issue 16: server/alerts/cases.py, server/mail/).
    response_target_min: float = Field(
        default=60.0, gt=0, description="a case with no response this long is overdue, escalated"
    )
    smtp_host: str | None = Field(default=None, description="SMTP server; unset: no e-mail")
    smtp_port: int = 25
    smtp_from: str = "nps-edge@localhost"
    smtp_starttls: bool = False
    public_url: str = Field(
        default="http://127.0.0.1:8080", description="the dashboard's address, for links in e-mail"
    )

    session_ttl_s: int = 7 * 24 * 3600
    cookie_secure: bool = Field(
        default=False,
        description="always mark the session cookie Secure (it is anyway on a request over HTTPS)",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses or networks of reverse proxies whose X-Forwarded-Proto, -Host and"
        " -For are believed (JSON list in NPS_EDGE_TRUSTED_PROXIES); empty: none",
    )
    login_max_failures: int = Field(
        default=10, ge=1, description="failed logins per client address within the window"
    )
    login_window_s: float = Field(
        default=300.0, gt=0, description="the window of the login rate limit, seconds"
    )

    # The voice from a phone (server/voice/, docs/server.md "The phone page").
    voice_secret: str | None = Field(
        default=None,
        description="file holding the secret the devices' voice keys derive from (created 0600"
        " on first use); default `nps-edge-voice.secret` beside the SQLite file, else in the cwd",
    )
    voice_ttl_s: float = Field(
        default=7 * 24 * 3600.0, gt=0, description="a phone link works this long after its answer"
    )
    voice_max_requests: int = Field(
        default=20,
        ge=1,
        description="phone page requests per client address within the"
        " login window (`login_window_s`)",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        """Refuse at start what would otherwise fail on a request: each an IP or a network."""
        for entry in value:
            ipaddress.ip_network(entry, strict=False)  # ValueError names the bad entry
        return value
