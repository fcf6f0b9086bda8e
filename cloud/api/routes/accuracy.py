"""``GET /api/accuracy``: the edge models' live accuracy against the cloud, by site and model."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from edgecascade.cloud.accuracy import BIASED_NOTE, CONFIDENCE, tallies, wilson_interval
from edgecascade.cloud.api.deps import ID, SessionDep, require
from edgecascade.cloud.api.schemas import AccuracyList, AccuracyOut, EscalatedDisagreement

router = APIRouter(prefix="/api", tags=["accuracy"], dependencies=[Depends(require("viewer"))])


@router.get("/accuracy")
def accuracy(
    session: SessionDep,
    site: Annotated[str | None, Query(pattern=ID, description="Only this site.")] = None,
    since: Annotated[float | None, Query(description="Verdicts made since (Unix s).")] = None,
) -> AccuracyList:
    """Per site and edge model: the agreement rate of the audit samples with its 95 % Wilson
    interval (unbiased), and the escalated frames' disagreement (biased, labelled so)."""
    items = []
    for t in tallies(session, site, since):
        low, high = wilson_interval(t.agreeing, t.audited, CONFIDENCE)
        escalated = EscalatedDisagreement(
            verdicts=t.escalated,
            disagreeing=t.disagreeing,
            disagreement=t.disagreeing / t.escalated if t.escalated else None,
            note=BIASED_NOTE,
        )
        items.append(
            AccuracyOut(
                site=t.site,
                model_name=t.model_name,
                model_version=t.model_version,
                audited=t.audited,
                agreeing=t.agreeing,
                estimate=t.agreeing / t.audited if t.audited else None,
                low=low,
                high=high,
                escalated=escalated,
            )
        )
    return AccuracyList(site=site, since=since, confidence=CONFIDENCE, items=items)
