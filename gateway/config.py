"""Gateway settings: flags > `NPS_EDGE_*` environment variables > a TOML file > defaults."""

from __future__ import annotations

import ipaddress
import re
import socket
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from contract.protocol import TOPIC_ROOT
from gateway.policy import Limits


def default_gateway_id() -> str:
    host = re.sub(r"[^a-z0-9-]+", "-", socket.gethostname().lower()).strip("-")
    return f"gw-{host or 'edge'}"[:64]


class GatewaySettings(BaseSettings):
    """Every field can be set as a flag, as `NPS_EDGE_<FIELD>` or in the config file."""

    model_config = SettingsConfigDict(env_prefix="NPS_EDGE_", extra="ignore")

    server: str | None = Field(None, description="server base URL, e.g. https://nps.example.com")
    token: str | None = Field(
        None, description="gateway token (nps-edge token create --role gateway)"
    )
    token_file: Path | None = Field(
        None, description="file holding the gateway token, read when `token` is not given"
    )
    server_ca: Path | None = Field(
        None,
        description="CA bundle (PEM) to verify the server's HTTPS certificate against;"
        " default: httpx's bundle (certifi)",
    )
    # Same private network only: the token crosses it in clear (docs/gateway.md).
    allow_plain_http: bool = False
    broker: str = "127.0.0.1:1883"
    broker_username: str | None = Field(None, description="the gateway's own broker login")
    # Environment or TOML only, never a flag: a process's argv is readable in `ps`.
    broker_password: SecretStr | None = None
    broker_tls: bool = False
    broker_ca: Path | None = Field(None, description="CA certificate of the broker (PEM)")
    broker_cert: Path | None = Field(None, description="client certificate (PEM), optional")
    broker_key: Path | None = Field(None, description="key of the client certificate (PEM)")
    # Per-device token bucket (policy.Throttle explains the defaults).
    rate_per_device: float = Field(1.0, gt=0, description="messages a second per device")
    burst_per_device: float = Field(3000.0, ge=1, description="messages at once per device")
    store: Path = Path("nps-edge-gateway.db")
    gateway_id: str = Field(default_factory=default_gateway_id, min_length=1, max_length=64)
    client_id: str | None = None
    topic_root: str = TOPIC_ROOT
    metrics_port: int = Field(9108, ge=0, le=65535)
    metrics_host: str = "0.0.0.0"
    max_events: int = Field(1_000_000, ge=1)
    max_mb: float = Field(512.0, gt=0)
    ttl_days: float = Field(30.0, gt=0)
    max_dead_letters: int = Field(100_000, ge=1)
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    batch_events: int = Field(1000, ge=1, le=1000)
    linger_ms: float = Field(
        100.0, ge=0, le=5000, description="after a part batch, wait this long for more (ms)"
    )
    # 1: two lanes cost CPU per event in fleet_load for 4 % more at saturation
    # (docs/benchmarks.md, Forwarding lanes); 2 pays for one gateway draining a backlog.
    forward_lanes: int = Field(
        1,
        ge=1,
        le=16,
        description="ingest requests in flight at once, each lane with its own devices (1: one)",
    )
    request_timeout: float = Field(30.0, gt=0)
    retry_max_s: float = Field(30.0, gt=0)
    log_level: str = "INFO"
    # The fleet (issue 14, docs/gateway.md "Commands and release files").
    command_poll_s: float = Field(10.0, gt=0, description="how often to fetch device commands")
    fw_port: int = Field(
        0, ge=0, le=65535, description="port serving release files to devices (8070); 0: off"
    )
    fw_host: str = Field("0.0.0.0", description="address the release file server listens on")
    fw_url: str | None = Field(
        None,
        description="how devices reach the file server, http://HOST:PORT; default fw_host's"
        " address, or the broker's host when fw_host is 0.0.0.0",
    )
    fw_cache: Path | None = Field(None, description="release files; default fw-cache by the store")

    @field_validator("synchronous", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    @model_validator(mode="after")
    def _token_from_file(self) -> GatewaySettings:
        if self.token is None and self.token_file is not None:
            try:
                self.token = self.token_file.read_text().strip() or None
            except OSError as err:
                raise ValueError(f"cannot read token_file {self.token_file}: {err}") from None
            if self.token is None:
                raise ValueError(f"token_file {self.token_file} is empty")
        if (self.broker_cert is None) != (self.broker_key is None):
            raise ValueError("broker_cert and broker_key go together")
        return self

    @property
    def mqtt_client_id(self) -> str:
        return self.client_id or f"nps-edge-{self.gateway_id}"

    @property
    def limits(self) -> Limits:
        return Limits(
            max_events=self.max_events,
            max_bytes=int(self.max_mb * 1024 * 1024),
            ttl_s=self.ttl_days * 86400.0,
            max_dead_letters=self.max_dead_letters,
        )


def token_in_clear(server: str) -> bool:
    """True for an `http://` URL to a host other than this one (127.0.0.0/8, ::1, localhost)."""
    url = httpx.URL(server)
    if url.scheme != "http":
        return False
    host = url.host.rstrip(".").lower()
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def load_settings(flags: dict[str, Any], config_file: Path | None = None) -> GatewaySettings:
    """Settings from flags (None = not given), the environment and an optional TOML file."""

    class _FromFile(GatewaySettings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if config_file is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
            return tuple(sources)

    given = {k: v for k, v in flags.items() if v is not None}
    return _FromFile(**given)
