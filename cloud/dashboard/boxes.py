"""The SQL behind the detection views: stored boxes back as contract objects, and boxes per
label counted over time (``/api/detections/counts`` and the escalations page's chart)."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from edgecascade.cloud.dashboard.buckets import bucket_index
from edgecascade.cloud.db.models import DetectedBox
from edgecascade.shared.fields import DetectedObject


def stored_box(row: DetectedBox) -> DetectedObject:
    """A ``detections`` row as the box it was."""
    return DetectedObject(
        label=row.label, score=row.score, box=(row.x0, row.y0, row.x1, row.y1), zone=row.zone
    )


def edge_boxes(session: Session, result_ids: list[str]) -> dict[str, list[DetectedObject]]:
    """The edge's stored boxes of these results, best first."""
    rows = session.scalars(
        select(DetectedBox)
        .where(DetectedBox.source == "edge", DetectedBox.result_id.in_(result_ids))
        .order_by(DetectedBox.result_id, DetectedBox.position)
    ).all()
    out: dict[str, list[DetectedObject]] = {}
    for row in rows:
        out.setdefault(row.result_id, []).append(stored_box(row))
    return out


def cloud_boxes(session: Session, escalation_ids: list[str]) -> dict[str, list[DetectedObject]]:
    """The cloud's stored boxes of the verdicts on these escalations, best first."""
    rows = session.scalars(
        select(DetectedBox)
        .where(DetectedBox.source == "cloud", DetectedBox.escalation_id.in_(escalation_ids))
        .order_by(DetectedBox.escalation_id, DetectedBox.position)
    ).all()
    out: dict[str, list[DetectedObject]] = {}
    for row in rows:
        out.setdefault(row.escalation_id or "", []).append(stored_box(row))
    return out


def detection_counts(
    session: Session,
    where: list[ColumnElement[bool]],
    since: float,
    until: float,
    bucket_s: float,
) -> dict[str, Any]:
    """Boxes per label in buckets of ``bucket_s`` from ``since`` (``where`` holds the window
    and the other filters), counted in the database; labels most boxes first."""
    count = max(1, math.ceil((until - since) / bucket_s))
    bucket = bucket_index(session, DetectedBox.captured_at, since, bucket_s)
    rows = session.execute(
        select(bucket, DetectedBox.label, func.count())
        .where(*where)
        .group_by(bucket, DetectedBox.label)
    ).all()
    points: list[dict[str, Any]] = [
        {"start": since + i * bucket_s, "counts": {}, "total": 0} for i in range(count)
    ]
    totals: dict[str, int] = {}
    for index, label, n in rows:
        point = points[min(max(int(index), 0), count - 1)]
        point["counts"][label] = point["counts"].get(label, 0) + int(n)
        point["total"] += int(n)
        totals[label] = totals.get(label, 0) + int(n)
    labels = sorted(totals, key=lambda label: (-totals[label], label))
    return {
        "since": since,
        "until": until,
        "bucket_s": bucket_s,
        "labels": labels,
        "points": points,
    }
