"""Settings of the site gateway (TOML file, ``EC_GATEWAY_*`` environment, CLI flags)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from shared.config import ComponentSettings, MqttSettings


class GatewaySettings(ComponentSettings):
    """Everything a gateway needs; validated once at start-up."""

    model_config = SettingsConfigDict(env_prefix="EC_GATEWAY_")

    site: str = Field("site1", pattern=r"^[A-Za-z0-9._-]{1,64}$", description="Site id served.")
    gateway_id: str = Field(
        "gateway", pattern=r"^[A-Za-z0-9._-]{1,64}$", description="This gateway's device id."
    )
    data_dir: Path = Field(Path("var/gateway"), description="Outbox directory.")
    outbox_quota_mb: float = Field(1024, gt=0, description="Disk quota of the outbox, MiB.")
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
