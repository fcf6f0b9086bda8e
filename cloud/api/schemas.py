"""Response bodies of the HTTP API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.messages import Prediction


class _FromRow(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)


class ResultOut(_FromRow):
    """One stored edge result."""

    msg_id: str
    site: str = Field(validation_alias="site_id")
    device: str = Field(validation_alias="device_id")
    frame_id: str
    captured_at: float = Field(description="Unix seconds.")
    received_at: float = Field(description="When the cloud received it, Unix seconds.")
    model_name: str
    model_version: str
    label: str = Field(description="Top-1 label.")
    label_index: int
    score: float
    top: list[Prediction]
    latency: dict[str, float] = Field(description="Stage latencies, milliseconds.")
    escalated: bool
    ground_truth: str | None


class ResultPage(BaseModel):
    """One page of results, ordered by capture time then message id."""

    items: list[ResultOut]
    total: int = Field(description="Results matching the filters, over all pages.")
    limit: int
    offset: int


class DeviceOut(_FromRow):
    """A device (or gateway) and what the cloud last heard from it."""

    site: str = Field(validation_alias="site_id")
    device: str = Field(validation_alias="device_id")
    status: str = Field(description="online, offline, or unknown before its first state.")
    role: str | None
    session: int | None
    model_name: str | None
    model_version: str | None
    model_sha256: str | None
    software: str | None
    first_seen: float
    last_seen: float
    last_state_at: float | None
    result_count: int


class DeviceList(BaseModel):
    items: list[DeviceOut]


class Health(BaseModel):
    """Liveness of the parts: 503 when the database is unreachable."""

    status: Literal["ok", "degraded"]
    database: bool
    mqtt: bool | None = Field(description="Ingest connected to the broker; null if not running.")
