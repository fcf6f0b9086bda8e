"""``GET /api/results``: stored edge results, filtered and paginated."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edgecascade.cloud.api.deps import ID, MAX_OFFSET, TEXT, SessionDep, require, scope_filters
from edgecascade.cloud.api.schemas import ResultOut, ResultPage
from edgecascade.cloud.db.models import LabelOverride, Result, Verdict


def with_final_answers(session: Session, rows: Sequence[Result]) -> list[ResultOut]:
    """Each result beside the answer that stands: a person's label on its escalation, else the
    cloud's verdict (the newest, if it was escalated more than once), else the edge's own."""
    judged = session.execute(
        select(Verdict.result_id, Verdict.label, LabelOverride.label)
        .outerjoin(LabelOverride, LabelOverride.escalation_id == Verdict.escalation_id)
        .where(Verdict.result_id.in_([row.msg_id for row in rows]))
        .order_by(Verdict.created_at)
    ).all()
    final = {
        result_id: (person, "person") if person is not None else (cloud, "cloud")
        for result_id, cloud, person in judged
    }
    out = []
    for row in rows:
        label, source = final.get(row.msg_id, (row.label, "edge"))
        item = ResultOut.model_validate(row)
        out.append(item.model_copy(update={"final_label": label, "final_source": source}))
    return out


router = APIRouter(prefix="/api", tags=["results"], dependencies=[Depends(require("viewer"))])


@router.get("/results")
def list_results(
    session: SessionDep,
    site: Annotated[str | None, Query(pattern=ID, description="Only this site.")] = None,
    device: Annotated[str | None, Query(pattern=ID, description="Only this device.")] = None,
    since: Annotated[float | None, Query(description="captured_at >= since (Unix s).")] = None,
    until: Annotated[float | None, Query(description="captured_at < until (Unix s).")] = None,
    label: Annotated[
        str | None, Query(pattern=TEXT, max_length=128, description="Only this top-1 label.")
    ] = None,
    escalated: Annotated[bool | None, Query(description="Only (not) escalated.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Results to skip.")] = 0,
) -> ResultPage:
    where = scope_filters(Result, site, device, since, until)
    if label is not None:
        where.append(Result.label == label)
    if escalated is not None:
        where.append(Result.escalated == escalated)
    total = session.scalar(select(func.count()).select_from(Result).where(*where)) or 0
    rows = session.scalars(
        select(Result)
        .where(*where)
        .order_by(Result.captured_at, Result.msg_id)
        .limit(limit)
        .offset(offset)
    ).all()
    return ResultPage(
        items=with_final_answers(session, rows),
        total=total,
        limit=limit,
        offset=offset,
    )
