"""Read endpoints the dashboard's pages need, beyond the resource endpoints of ``/api``.

- ``GET /api/dashboard/whoami``: the token's name and role, so the page can disable what the
  caller may not do (the API refuses it anyway);
- ``GET /api/dashboard/fleet``: every device with its newest telemetry and escalation rate;
- ``GET /api/dashboard/devices/{site}/{device}``: one device, its newest full telemetry sample;
- ``GET /api/dashboard/health``: cascade health over time (:func:`cloud.dashboard.queries.health`).
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field, JsonValue
from sqlalchemy import select

from edgecascade.cloud.api.deps import ServicesDep, SessionDep, Viewer
from edgecascade.cloud.dashboard import queries
from edgecascade.cloud.db.models import Telemetry

router = APIRouter(prefix="/api/dashboard", tags=["dashboard"])

MAX_BUCKETS = 500
FLEET_WINDOW_S = 300.0  # the escalation rate's window, unless asked otherwise


class WhoAmI(BaseModel):
    name: str
    role: str


class FleetDevice(BaseModel):
    """A device as the fleet page shows it."""

    site: str
    device: str
    role: str | None
    status: str = Field(description="online/offline from its retained state; unknown before.")
    last_seen: float
    model_name: str | None
    model_version: str | None
    fps: float | None
    cpu_percent: float | None
    memory_percent: float | None
    temperature_c: float | None
    telemetry_at: float | None
    outbox_depth: int | None = Field(description="Messages waiting in its outbox, all classes.")
    results_recent: int = Field(description="Results received within the window.")
    escalation_rate: float | None = Field(description="Escalated share of those results.")


class Fleet(BaseModel):
    window_s: float
    items: list[FleetDevice]


class DeviceDetail(BaseModel):
    """One device and its newest telemetry sample, whole (queues, counters, latencies)."""

    device: FleetDevice
    telemetry: dict[str, JsonValue] | None


class HealthPoint(BaseModel):
    start: float
    results: int
    escalated: int
    verdicts: int
    disagreed: int
    escalation_rate: float | None
    disagreement: float | None
    escalation_bytes: int = Field(description="Escalated frames, with headers.")
    uplink_bytes: int = Field(description="Results and escalations, as sent.")
    every_frame_bytes: int | None = Field(description="Had every frame been sent instead.")
    detection_verdicts: int = Field(0, description="Of the verdicts, on detection frames.")
    edge_precision: float | None = Field(
        None, description="Mean precision of the edge's boxes against the cloud's; null: none."
    )
    edge_recall: float | None = Field(
        None, description="Mean recall of the edge's boxes against the cloud's; null: none."
    )


class HealthTotals(BaseModel):
    results: int
    escalated: int
    verdicts: int
    disagreed: int
    uplink_bytes: int
    every_frame_bytes: int | None
    escalation_rate: float | None
    disagreement: float | None
    uplink_ratio: float | None = Field(description="uplink_bytes / every_frame_bytes.")
    detection_verdicts: int = Field(0, description="Of the verdicts, on detection frames.")
    edge_precision: float | None = Field(None, description="Mean over detection verdicts.")
    edge_recall: float | None = Field(None, description="Mean over detection verdicts.")


class Health(BaseModel):
    """Cascade health in time buckets (by the time the cloud received each message)."""

    since: float
    until: float
    bucket_s: float
    result_bytes: float | None = Field(description="Mean size of a result message.")
    escalation_bytes: float | None = Field(description="Mean size of an escalation message.")
    points: list[HealthPoint]
    totals: HealthTotals


@router.get("/whoami")
def whoami(principal: Viewer) -> WhoAmI:
    return WhoAmI(name=principal.name, role=principal.role)


@router.get("/fleet")
def fleet(
    _: Viewer,
    session: SessionDep,
    window_s: Annotated[
        float, Query(gt=0, le=86_400, description="Escalation rate over this many seconds.")
    ] = FLEET_WINDOW_S,
) -> Fleet:
    items = queries.fleet(session, window_s)
    return Fleet(window_s=window_s, items=[FleetDevice.model_validate(i) for i in items])


@router.get("/devices/{site}/{device}")
def device_detail(_: Viewer, session: SessionDep, site: str, device: str) -> DeviceDetail:
    found = queries.fleet(session, FLEET_WINDOW_S, only=(site, device))
    if not found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device {device!r} in site {site!r}")
    sample = session.scalar(
        select(Telemetry)
        .where(Telemetry.site_id == site, Telemetry.device_id == device)
        .order_by(Telemetry.ts.desc())
        .limit(1)
    )
    return DeviceDetail(
        device=FleetDevice.model_validate(found[0]),
        telemetry=sample.payload if sample is not None else None,
    )


@router.get("/health")
def health(
    _: Viewer,
    session: SessionDep,
    services: ServicesDep,
    window_s: Annotated[
        float, Query(gt=0, le=30 * 86_400, description="Seconds back from now.")
    ] = 600.0,
    bucket_s: Annotated[float, Query(gt=0, description="Seconds per point.")] = 10.0,
) -> Health:
    if window_s / bucket_s > MAX_BUCKETS:
        raise HTTPException(
            422,  # Starlette deprecated the constant's old name and not all versions have the new
            f"window_s {window_s:g} / bucket_s {bucket_s:g} gives more than {MAX_BUCKETS} "
            "points; use larger buckets",
        )
    until = time.time()
    body = queries.health(session, services.blobs, until - window_s, until, bucket_s)
    return Health.model_validate(body)
