"""``GET /api/escalations``: escalated frames with the cloud's verdicts; and each frame's bytes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, status
from sqlalchemy import func, select

from edgecascade.cloud.api.deps import (
    ID,
    MAX_OFFSET,
    MESSAGE_ID,
    ServicesDep,
    SessionDep,
    require,
    scope_filters,
)
from edgecascade.cloud.api.schemas import EscalationOut, EscalationPage, VerdictOut
from edgecascade.cloud.blobs import BlobNotFound
from edgecascade.cloud.dashboard.boxes import cloud_boxes
from edgecascade.cloud.db.models import Escalation, LabelOverride, Verdict
from edgecascade.cloud.labels import final_label
from edgecascade.shared.fields import DetectedObject

router = APIRouter(prefix="/api", tags=["escalations"], dependencies=[Depends(require("viewer"))])


@router.get("/escalations")
def list_escalations(
    session: SessionDep,
    site: Annotated[str | None, Query(pattern=ID, description="Only this site.")] = None,
    device: Annotated[str | None, Query(pattern=ID, description="Only this device.")] = None,
    since: Annotated[float | None, Query(description="captured_at >= since (Unix s).")] = None,
    until: Annotated[float | None, Query(description="captured_at < until (Unix s).")] = None,
    label: Annotated[str | None, Query(description="Only this edge top-1 label.")] = None,
    agrees: Annotated[
        bool | None, Query(description="Only those the cloud agreed (or disagreed) with.")
    ] = None,
    judged: Annotated[
        bool | None, Query(description="Only those with (without) a verdict.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Escalations to skip.")] = 0,
) -> EscalationPage:
    where = scope_filters(Escalation, site, device, since, until)
    if label is not None:
        where.append(Escalation.edge_label == label)
    if agrees is not None:
        where.append(Verdict.agrees == agrees)
    if judged is not None:
        where.append(
            Verdict.escalation_id.is_not(None) if judged else Verdict.escalation_id.is_(None)
        )
    joined = (
        select(Escalation, Verdict, LabelOverride)
        .outerjoin(Verdict, Verdict.escalation_id == Escalation.msg_id)
        .outerjoin(LabelOverride, LabelOverride.escalation_id == Escalation.msg_id)
    )
    total = session.scalar(select(func.count()).select_from(joined.where(*where).subquery())) or 0
    rows = session.execute(
        joined.where(*where)
        .order_by(Escalation.captured_at, Escalation.msg_id)
        .limit(limit)
        .offset(offset)
    ).all()
    boxes = cloud_boxes(session, [e.msg_id for e, v, _ in rows if v and v.task == "detection"])
    items = [_escalation_out(*row, boxes=boxes.get(row[0].msg_id, [])) for row in rows]
    return EscalationPage(items=items, total=total, limit=limit, offset=offset)


def _escalation_out(
    escalation: Escalation,
    verdict: Verdict | None,
    override: LabelOverride | None,
    boxes: list[DetectedObject],
) -> EscalationOut:
    """An escalation with its verdict; a detection's with the edge's and the cloud's boxes."""
    final = final_label(verdict, override)
    judged = None
    if verdict is not None:
        judged = VerdictOut.model_validate(
            {
                **{c.key: getattr(verdict, c.key) for c in Verdict.__table__.columns},
                "detections": boxes,
            }
        )
    return EscalationOut.model_validate(
        {
            **{c.key: getattr(escalation, c.key) for c in Escalation.__table__.columns},
            "frame_url": f"/api/escalations/{escalation.msg_id}/frame",
            "verdict": judged,
            "final_label": final.label,
            "label_source": final.source,
        }
    )


@router.get(
    "/escalations/{msg_id}/frame",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}},
)
def escalation_frame(
    msg_id: Annotated[str, Path(pattern=MESSAGE_ID, description="The escalation's message id.")],
    session: SessionDep,
    services: ServicesDep,
) -> Response:
    escalation = session.get(Escalation, msg_id)
    if escalation is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no escalation {msg_id!r}")
    if escalation.frame_purged_at is not None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"the frame of escalation {msg_id!r} was purged by retention (retention.frames_days "
            "or frames_max_gb); its verdict is kept",
        )
    try:
        body = services.blobs.get(escalation.blob_path)
    except BlobNotFound:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"the frame of escalation {msg_id!r} is missing"
        ) from None
    return Response(body, media_type=escalation.content_type)
