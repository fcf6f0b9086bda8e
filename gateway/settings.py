"""Settings of the site gateway (TOML file, ``EC_GATEWAY_*`` environment, CLI flags)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, StringConstraints, model_validator
from pydantic_settings import SettingsConfigDict

from edgecascade.gateway.ratelimit import CLASS_NAMES, class_of
from edgecascade.shared.config import ComponentSettings, MqttSettings, Section
from edgecascade.shared.contract import KINDS, MIB, Direction, Role
from edgecascade.shared.outbox import (
    DEFAULT_CONFIRM_S,
    DEFAULT_REPLAY_S,
    DEFAULT_SYNC,
    ConfirmSeconds,
    OutboxSync,
    ReplaySeconds,
)
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


class KindLimit(Section):
    """One device's budget for one class of messages: a message bucket and a byte bucket."""

    messages_per_s: float = Field(ge=0, description="Messages per second; 0 = unlimited.")
    burst_messages: int = Field(ge=1, description="Messages the bucket holds (sent at once).")
    bytes_per_s: float = Field(ge=0, description="Payload bytes per second; 0 = unlimited.")
    burst_bytes: int = Field(ge=1, description="Payload bytes the bucket holds.")


BURST_S = 60  # the default bursts hold a minute of the default rates


def _rate(default: float, unit: str) -> Any:
    return Field(default, ge=0, description=f"{unit} per second; 0 = unlimited.")


def _burst(default: float, unit: str) -> Any:
    return Field(int(default * BURST_S), ge=1, description=f"{unit} the bucket holds.")


class ResultLimit(KindLimit):
    """Results (16 KiB each at most)."""

    messages_per_s: float = _rate(1000, "Messages")
    burst_messages: int = _burst(1000, "Messages")
    bytes_per_s: float = _rate(16 * MIB, "Payload bytes")
    burst_bytes: int = _burst(16 * MIB, "Payload bytes")


class EscalationLimit(KindLimit):
    """Escalations and audit samples (frames of up to 4 MiB)."""

    messages_per_s: float = _rate(1000, "Messages")
    burst_messages: int = _burst(1000, "Messages")
    bytes_per_s: float = _rate(64 * MIB, "Payload bytes")
    burst_bytes: int = _burst(64 * MIB, "Payload bytes")


class SmallLimit(KindLimit):
    """Telemetry, or the rest: state, model acks and chunk requests, replies."""

    messages_per_s: float = _rate(50, "Messages")
    burst_messages: int = _burst(50, "Messages")
    bytes_per_s: float = _rate(4 * MIB, "Payload bytes")
    burst_bytes: int = _burst(4 * MIB, "Payload bytes")


def _largest_payload(klass: str) -> int:
    """The contract's largest payload of the device kinds in rate-limit class ``klass``."""
    return max(
        spec.limit
        for spec in KINDS.values()
        if spec.direction is Direction.UP
        and Role.DEVICE in spec.publishers
        and class_of(spec.kind) == klass
    )


class KindOverride(Section):
    """A device's own budget for one class: the fields given replace the site's."""

    messages_per_s: float | None = Field(None, ge=0, description="Messages per second.")
    burst_messages: int | None = Field(None, ge=1, description="Messages the bucket holds.")
    bytes_per_s: float | None = Field(None, ge=0, description="Payload bytes per second.")
    burst_bytes: int | None = Field(None, ge=1, description="Payload bytes the bucket holds.")


class DeviceLimits(Section):
    """One device's budgets; a class (or field) left out keeps the site's."""

    result: KindOverride | None = None
    escalation: KindOverride | None = None
    telemetry: KindOverride | None = None
    other: KindOverride | None = None


DeviceId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]


class RateLimitSettings(Section):
    """Per-device budgets at the gateway, checked before a message is decoded; what exceeds
    them is counted and dead-lettered (one dead letter per device and class per interval)."""

    # A device may take about a tenth of what the gateway drains on two cores (docs/BENCHMARKS.md:
    # 9,723 results/s): 1,000 results or escalations a second is 5x the fastest camera any
    # bench or the demo runs (bench cascade: 200 fps, every frame escalated under cloud-only)
    # and the bursts hold a minute of it, so none of them is limited.
    result: ResultLimit = Field(
        default_factory=ResultLimit, description="Results (16 KiB each at most)."
    )
    escalation: EscalationLimit = Field(
        default_factory=EscalationLimit,
        description="Escalations, audit samples included (frames of up to 4 MiB).",
    )
    telemetry: SmallLimit = Field(
        default_factory=SmallLimit,
        description="Telemetry samples (an agent sends one every telemetry_interval_s).",
    )
    other: SmallLimit = Field(
        default_factory=SmallLimit,
        description="Everything else a device sends: state, model acks and chunk requests, "
        "replies.",
    )
    devices: dict[DeviceId, DeviceLimits] = Field(
        default_factory=dict,
        description="Per-device budgets replacing the site's for the classes and fields they "
        "name, e.g. [rate_limits.devices.cam7.result] messages_per_s = 120.",
    )
    absence_s: float = Field(
        10.0,
        gt=0,
        description="A device heard again after this long without a message (or the gateway "
        "restarted after this long away) is credited its rates times the silence on top of its "
        "bursts: the backlog its outbox or the site broker kept is let through.",
    )
    catch_up_s: float = Field(
        7 * 86_400.0,
        ge=0,
        description="The longest silence credited (the site broker's default session expiry).",
    )
    dead_letter_interval_s: float = Field(
        10.0,
        gt=0,
        description="Dead-letter the first message over a device's budget per class and "
        "interval; the rest are counted, per device and class, in the gateway's telemetry "
        "(rate_limited.DEVICE.CLASS).",
    )

    def limit(self, device: str, klass: str) -> KindLimit:
        """``device``'s budget for ``klass``: the site's, with the device's overrides."""
        site: KindLimit = getattr(self, klass)
        own = self.devices.get(device)
        override: KindOverride | None = None if own is None else getattr(own, klass)
        if override is None:
            return site
        return KindLimit(**{**site.model_dump(), **override.model_dump(exclude_none=True)})

    @model_validator(mode="after")
    def _bursts_hold_a_message(self) -> RateLimitSettings:
        for device in (None, *self.devices):
            for klass in CLASS_NAMES:
                limit = getattr(self, klass) if device is None else self.limit(device, klass)
                where = klass if device is None else f"devices.{device}.{klass}"
                largest = _largest_payload(klass)
                if limit.bytes_per_s and limit.burst_bytes < largest:
                    raise ValueError(
                        f"rate_limits.{where}.burst_bytes {limit.burst_bytes} is below the "
                        f"largest {klass} payload the contract allows ({largest} bytes): such a "
                        "message could never pass"
                    )
        return self


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
    outbox_confirm_s: ConfirmSeconds = DEFAULT_CONFIRM_S
    outbox_sync: OutboxSync = DEFAULT_SYNC
    dedup_window_s: float = Field(
        86_400.0,
        ge=0,
        description="A message id seen within this window is a duplicate, even after it was "
        "forwarded (a device that missed a PUBACK sends again).",
    )
    batch: BatchSettings = Field(default_factory=BatchSettings, description="Result batching.")
    rate_limits: RateLimitSettings = Field(
        default_factory=RateLimitSettings, description="Per-device rate limits."
    )
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
