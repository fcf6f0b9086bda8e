"""Settings of the site gateway (TOML file, ``EC_GATEWAY_*`` environment, CLI flags)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from edgecascade.shared.config import ComponentSettings, MqttSettings, Section
from edgecascade.shared.outbox import DEFAULT_REPLAY_S, DEFAULT_SYNC, OutboxSync, ReplaySeconds
from edgecascade.shared.topics import ID_PATTERN


class BatchSettings(Section):
    """How results are batched on the way to the cloud."""

    max_results: int = Field(500, ge=1, le=10_000, description="Results per cloud message.")
    max_bytes: int = Field(
        1024 * 1024, ge=1024, le=15 * 1024 * 1024, description="Payload bytes per cloud message."
    )
    linger_ms: float = Field(
        200.0,
        ge=0,
        le=60_000,
        description="Wait up to this long after the oldest queued result for a batch to fill; "
        "0 sends at once. Adds at most this much latency; backlogs batch without waiting.",
    )
    compress: bool = Field(
        True,
        description="zlib-compress result batches (about 6x fewer uplink bytes for batches of "
        "tens of results; costs gateway CPU). The cloud's ingest reads both forms; false sends "
        "plain JSON.",
    )


class GatewaySettings(ComponentSettings):
    """Everything a gateway needs; validated once at start-up."""

    model_config = SettingsConfigDict(env_prefix="EC_GATEWAY_")

    site: str = Field("site1", pattern=ID_PATTERN, description="Site id served.")
    gateway_id: str = Field("gateway", pattern=ID_PATTERN, description="This gateway's device id.")
    data_dir: Path = Field(
        Path("var/gateway"), description="Outboxes, de-duplication table and model cache."
    )
    outbox_quota_mb: float = Field(1024, gt=0, description="Disk quota of the outbox, MiB.")
    outbox_replay_s: ReplaySeconds = DEFAULT_REPLAY_S
    outbox_sync: OutboxSync = DEFAULT_SYNC
    dedup_window_s: float = Field(
        86_400.0,
        ge=0,
        description="A message id seen within this window is a duplicate, even after it was "
        "forwarded (a device that missed a PUBACK sends again).",
    )
    batch: BatchSettings = Field(default_factory=BatchSettings, description="Result batching.")
    telemetry_window_s: float = Field(
        30.0,
        ge=0,
        description="Roll each device's telemetry up over this window (min/mean/max/last); "
        "0 forwards every sample.",
    )
    telemetry_interval_s: float = Field(
        10.0,
        gt=0,
        description="Seconds between the gateway's own telemetry (its counters and queues).",
    )
    model_cache_mb: float = Field(
        2048, gt=0, description="Disk quota of the model artifact cache, MiB."
    )
    model_public_key: Path | None = Field(
        None,
        description="ed25519 public key (PEM) that signs model manifests; when set, the cache "
        "refuses unsigned or wrongly signed models before fetching them.",
    )
    site_mqtt: MqttSettings = Field(
        default_factory=lambda: MqttSettings(session_expiry=7 * 86_400),
        description=(
            "The site broker the devices publish to. The session lasts a week by default: while "
            "the gateway is away the broker queues device messages for it."
        ),
    )
    cloud_mqtt: MqttSettings = Field(
        default_factory=lambda: MqttSettings(port=1884), description="The cloud broker."
    )

    @model_validator(mode="after")
    def _two_brokers(self) -> GatewaySettings:
        same = (self.site_mqtt.host, self.site_mqtt.port) == (
            self.cloud_mqtt.host,
            self.cloud_mqtt.port,
        )
        if same:
            raise ValueError(
                "site_mqtt and cloud_mqtt point at the same broker "
                f"{self.site_mqtt.host}:{self.site_mqtt.port}; forwarding would loop"
            )
        if self.site_mqtt.prefix != self.cloud_mqtt.prefix:
            raise ValueError("site_mqtt.prefix and cloud_mqtt.prefix must be equal")
        return self
