"""Request and response bodies of the fleet API (remote config, tags, diagnostics)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints

from edgecascade.cloud.fleet.configs import DeviceConfig
from edgecascade.cloud.fleet.tags import MAX_EXPRESSION
from edgecascade.shared.diagnostics import DEFAULT_LINES, MAX_LINES
from edgecascade.shared.fields import NO_NUL
from edgecascade.shared.topics import ID_PATTERN

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Expression = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_EXPRESSION, pattern=NO_NUL)
]
TagText = Annotated[str, StringConstraints(min_length=1, max_length=129, pattern=NO_NUL)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConfigIn(_Body):
    """A new config version: the live settings and whom they are for (a site; a tag
    expression, fleet-wide or in the site; or a device list of the site)."""

    site: Id | None = Field(None, description="The site; alone: every agent of it.")
    tags: Expression | None = Field(
        None, description="Tag expression, e.g. 'zone:north and not model:old'."
    )
    devices: Annotated[list[Id], Field(min_length=1, max_length=1000)] | None = Field(
        None, description="Device ids of the site."
    )
    settings: dict[Annotated[str, StringConstraints(max_length=64)], JsonValue] = Field(
        description="The agent's live settings (escalation, source.fps, gating, zones, "
        "zone_anchor, telemetry_interval_s), laid over each agent's start-up settings."
    )


class ConfigOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)

    version: int
    site: str | None = Field(validation_alias="site_id")
    tags: str | None
    devices: list[str] | None
    settings: dict[str, Any] = Field(validation_alias="document")
    created_by: str
    created_at: float


class ConfigList(BaseModel):
    items: list[ConfigOut]


class ReplyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)

    version: int
    status: str
    error: str
    received_at: float


class DeviceConfigOut(BaseModel):
    """Desired (the newest version that targets the device) against reported (its state)."""

    site: str
    device: str
    status: str
    tags: list[str]
    desired: int | None
    reported: int | None
    drift: bool = Field(description="The device does not report the version it should run.")
    refused: bool = Field(description="It refused the desired version: see reply.error.")
    reply: ReplyOut | None = Field(description="Its newest answer to a config command.")
    settings: dict[str, Any] | None = Field(None, description="The desired version's settings.")

    @classmethod
    def of(cls, config: DeviceConfig, settings: dict[str, Any] | None = None) -> DeviceConfigOut:
        reply = ReplyOut.model_validate(config.reply) if config.reply is not None else None
        return cls(
            site=config.site,
            device=config.device,
            status=config.status,
            tags=config.tags,
            desired=config.desired,
            reported=config.reported,
            drift=config.drift,
            refused=config.refused,
            reply=reply,
            settings=settings,
        )


class DeviceConfigList(BaseModel):
    items: list[DeviceConfigOut]


class TagsIn(_Body):
    tags: Annotated[list[TagText], Field(max_length=64)] = Field(
        description="The device's tags (replacing the old ones): word or name:value."
    )


class TagsOut(BaseModel):
    site: str
    device: str
    tags: list[str]


class DiagnosticsIn(_Body):
    lines: int = Field(DEFAULT_LINES, ge=0, le=MAX_LINES, description="Log lines to return.")


class DiagnosticsOut(BaseModel):
    """A device's or gateway's answer: log lines, settings in force (no secrets), outbox."""

    site: str
    device: str
    data: JsonValue
