"""``GET /api/devices``: devices with their last state and how many results they sent."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import func, select

from edgecascade.cloud.api.deps import ID, SessionDep, require
from edgecascade.cloud.api.schemas import DeviceList, DeviceOut
from edgecascade.cloud.db.models import Device, Result

router = APIRouter(prefix="/api", tags=["devices"], dependencies=[Depends(require("viewer"))])


@router.get("/devices")
def list_devices(
    session: SessionDep,
    site: Annotated[str | None, Query(pattern=ID, description="Only devices of this site.")] = None,
) -> DeviceList:
    counts = (
        select(Result.site_id, Result.device_id, func.count().label("n"))
        .group_by(Result.site_id, Result.device_id)
        .subquery()
    )
    stmt = (
        select(Device, func.coalesce(counts.c.n, 0))
        .outerjoin(
            counts,
            (counts.c.site_id == Device.site_id) & (counts.c.device_id == Device.device_id),
        )
        .order_by(Device.site_id, Device.device_id)
    )
    if site is not None:
        stmt = stmt.where(Device.site_id == site)
    items = [
        DeviceOut.model_validate(
            {**_columns(device), "result_count": count},
        )
        for device, count in session.execute(stmt)
    ]
    return DeviceList(items=items)


def _columns(device: Device) -> dict[str, object]:
    return {column.key: getattr(device, column.key) for column in Device.__table__.columns}
