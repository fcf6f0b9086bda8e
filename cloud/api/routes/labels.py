"""``/api/escalations/{id}/label``: a person's label for a frame (operator sets and withdraws it);
``/api/labels/queue``: the disagreements waiting for one (viewer)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status

from edgecascade.cloud.api.deps import ID, MESSAGE_ID, Operator, SessionDep, require
from edgecascade.cloud.api.schemas import LabelIn, LabelOut, LabelQueue, LabelQueueItem
from edgecascade.cloud.labels import review_queue, set_override, withdraw_override

router = APIRouter(prefix="/api", tags=["labels"])
viewer = [Depends(require("viewer"))]
EscalationId = Annotated[str, Path(pattern=MESSAGE_ID, description="The escalation's message id.")]


@router.put("/escalations/{msg_id}/label")
def put_label(
    msg_id: EscalationId, body: LabelIn, principal: Operator, session: SessionDep
) -> LabelOut:
    """Set (or replace) the label of a frame; it wins over the cloud's verdict. 422 for a label
    the edge model does not have (the answer names the ones it has)."""
    row = set_override(session, msg_id, body.label, body.note, principal.name)
    return LabelOut.model_validate(row)


@router.delete("/escalations/{msg_id}/label", status_code=status.HTTP_204_NO_CONTENT)
def delete_label(msg_id: EscalationId, principal: Operator, session: SessionDep) -> None:
    """Withdraw a person's label: the cloud's verdict counts again."""
    del principal
    withdraw_override(session, msg_id)


@router.get("/labels/queue", dependencies=viewer)
def label_queue(
    session: SessionDep,
    site: Annotated[str | None, Query(pattern=ID, description="Only this site.")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="At most this many.")] = 50,
) -> LabelQueue:
    total, entries = review_queue(session, site, limit)
    items = [
        LabelQueueItem(
            msg_id=e.escalation.msg_id,
            site=e.escalation.site_id,
            device=e.escalation.device_id,
            captured_at=e.escalation.captured_at,
            frame_url=f"/api/escalations/{e.escalation.msg_id}/frame",
            edge_model=f"{e.escalation.model_name}@{e.escalation.model_version}",
            edge_label=e.escalation.edge_label,
            edge_score=e.escalation.edge_score,
            cloud_model=f"{e.verdict.model_name}@{e.verdict.model_version}",
            cloud_label=e.verdict.label,
            cloud_score=e.verdict.score,
            labels=e.labels,
        )
        for e in entries
    ]
    return LabelQueue(items=items, total=total)
