"""``GET /api/sites`` and ``GET /api/telemetry``: the fleet by site, a device's health over time."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import case, func, select

from edgecascade.cloud.api.deps import ID, SessionDep, require
from edgecascade.cloud.api.schemas import SiteList, SiteOut, TelemetryPoint, TelemetrySeries
from edgecascade.cloud.db.models import Device, Result, Site, Telemetry

router = APIRouter(prefix="/api", tags=["sites"], dependencies=[Depends(require("viewer"))])


@router.get("/sites")
def list_sites(session: SessionDep) -> SiteList:
    devices = (
        select(
            Device.site_id,
            func.count().label("devices"),
            func.sum(case((Device.status == "online", 1), else_=0)).label("online"),
        )
        .group_by(Device.site_id)
        .subquery()
    )
    results = (
        select(Result.site_id, func.count().label("results")).group_by(Result.site_id).subquery()
    )
    rows = session.execute(
        select(Site, devices.c.devices, devices.c.online, results.c.results)
        .outerjoin(devices, devices.c.site_id == Site.id)
        .outerjoin(results, results.c.site_id == Site.id)
        .order_by(Site.id)
    ).all()
    return SiteList(
        items=[
            SiteOut(
                site=site.id,
                first_seen=site.first_seen,
                last_seen=site.last_seen,
                devices=n or 0,
                online=online or 0,
                results=count or 0,
            )
            for site, n, online, count in rows
        ]
    )


@router.get("/telemetry")
def telemetry_series(
    session: SessionDep,
    site: Annotated[str, Query(pattern=ID, description="The device's site.")],
    device: Annotated[str, Query(pattern=ID, description="The device.")],
    since: Annotated[float | None, Query(description="ts >= since (Unix s).")] = None,
    until: Annotated[float | None, Query(description="ts < until (Unix s).")] = None,
    field: Annotated[
        list[str] | None,
        Query(description="Extra dotted paths into the sample, e.g. queues.outbox.result."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="Newest points kept.")] = 1000,
) -> TelemetrySeries:
    stmt = select(Telemetry).where(Telemetry.site_id == site, Telemetry.device_id == device)
    if since is not None:
        stmt = stmt.where(Telemetry.ts >= since)
    if until is not None:
        stmt = stmt.where(Telemetry.ts < until)
    rows = session.scalars(stmt.order_by(Telemetry.ts.desc()).limit(limit)).all()
    points = [
        TelemetryPoint(
            ts=row.ts,
            cpu_percent=row.cpu_percent,
            memory_percent=row.memory_percent,
            temperature_c=row.temperature_c,
            fps=row.fps,
            frames=row.frames,
            fields={path: _at(row.payload, path) for path in field or ()},
        )
        for row in reversed(rows)
    ]
    return TelemetrySeries(site=site, device=device, points=points)


def _at(payload: dict[str, Any], path: str) -> float | None:
    """The number at a dotted path; keys may hold dots themselves (``queues.outbox.result``)."""
    node: Any = payload
    rest = path
    while rest:
        if not isinstance(node, dict):
            return None
        key = next(
            (
                k
                for k in sorted(node, key=len, reverse=True)
                if rest == k or rest.startswith(k + ".")
            ),
            None,
        )
        if key is None:
            return None
        node, rest = node[key], rest[len(key) + 1 :]
    return float(node) if isinstance(node, int | float) and not isinstance(node, bool) else None
