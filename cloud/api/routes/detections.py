"""``GET /api/detections``: stored boxes, filtered and paged; ``GET /api/detections/counts``:
boxes per label over time."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from sqlalchemy import ColumnElement, func, select

from edgecascade.cloud.api.deps import ID, MAX_OFFSET, TEXT, SessionDep, require, scope_filters
from edgecascade.cloud.api.detection_schemas import (
    DetectionCounts,
    DetectionOut,
    DetectionPage,
    Source,
)
from edgecascade.cloud.dashboard.boxes import detection_counts as count_boxes
from edgecascade.cloud.db.models import DetectedBox

router = APIRouter(prefix="/api", tags=["detections"], dependencies=[Depends(require("viewer"))])

MAX_BUCKETS = 1000
MAX_TIME = 1e11  # Unix seconds (year 5138): bounds what a window's arithmetic sees
DEFAULT_WINDOW_S = 3600.0

SiteQuery = Annotated[str | None, Query(pattern=ID, description="Only this site.")]
DeviceQuery = Annotated[str | None, Query(pattern=ID, description="Only this device.")]
LabelQuery = Annotated[
    str | None, Query(pattern=TEXT, max_length=128, description="Only boxes of this label.")
]
SourceQuery = Annotated[
    Source | None, Query(description="Only the edge's boxes (results) or the cloud's (verdicts).")
]


def _since(description: str) -> Any:
    return Query(ge=0, le=MAX_TIME, description=description)


def _filters(
    site: str | None,
    device: str | None,
    since: float | None,
    until: float | None,
    label: str | None,
    source: str | None,
) -> list[ColumnElement[bool]]:
    where = scope_filters(DetectedBox, site, device, since, until)
    if label is not None:
        where.append(DetectedBox.label == label)
    if source is not None:
        where.append(DetectedBox.source == source)
    return where


@router.get("/detections")
def list_detections(
    session: SessionDep,
    site: SiteQuery = None,
    device: DeviceQuery = None,
    since: Annotated[float | None, _since("captured_at >= since (Unix s).")] = None,
    until: Annotated[float | None, _since("captured_at < until (Unix s).")] = None,
    label: LabelQuery = None,
    source: SourceQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Boxes to skip.")] = 0,
) -> DetectionPage:
    where = _filters(site, device, since, until, label, source)
    total = session.scalar(select(func.count()).select_from(DetectedBox).where(*where)) or 0
    rows = session.scalars(
        select(DetectedBox)
        .where(*where)
        .order_by(
            DetectedBox.captured_at,
            DetectedBox.result_id,
            DetectedBox.source,
            DetectedBox.position,
        )
        .limit(limit)
        .offset(offset)
    ).all()
    return DetectionPage(
        items=[detection_out(row) for row in rows], total=total, limit=limit, offset=offset
    )


def detection_out(row: DetectedBox) -> DetectionOut:
    return DetectionOut(
        result_id=row.result_id,
        source="cloud" if row.source == "cloud" else "edge",
        position=row.position,
        escalation_id=row.escalation_id,
        site=row.site_id,
        device=row.device_id,
        captured_at=row.captured_at,
        model_name=row.model_name,
        model_version=row.model_version,
        label=row.label,
        score=row.score,
        box=(row.x0, row.y0, row.x1, row.y1),
        zone=row.zone,
        frame_width=row.frame_width,
        frame_height=row.frame_height,
    )


@router.get("/detections/counts")
def detection_counts(
    session: SessionDep,
    site: SiteQuery = None,
    device: DeviceQuery = None,
    since: Annotated[float | None, _since("Start, Unix s; default: an hour before until.")] = None,
    until: Annotated[float | None, _since("End (excluded), Unix s; default: now.")] = None,
    bucket_s: Annotated[float, Query(gt=0, le=MAX_TIME, description="Seconds per bucket.")] = 60.0,
    label: LabelQuery = None,
    source: SourceQuery = None,
) -> DetectionCounts:
    end = time.time() if until is None else until
    start = end - DEFAULT_WINDOW_S if since is None else since
    if end <= start:
        raise HTTPException(422, f"until {end:g} is not after since {start:g}")
    buckets = (end - start) / bucket_s  # a tiny bucket_s overflows to infinity
    if not buckets <= MAX_BUCKETS:
        raise HTTPException(
            422,  # Starlette deprecated the constant's old name and not all versions have the new
            f"({end:g} - {start:g}) / bucket_s {bucket_s:g} gives {buckets:.4g} "
            f"buckets, more than {MAX_BUCKETS}; use larger buckets or a shorter window",
        )
    where = _filters(site, device, start, end, label, source)
    body = count_boxes(session, where, start, end, bucket_s)
    return DetectionCounts.model_validate(body)
