"""``/api/training``: queue a training run by hand (admin), follow the runs, and the lineage of
the registered models (viewer). The API only inserts queued runs; ``edgecascade cloud trainer``
does them."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field, JsonValue
from sqlalchemy import select

from edgecascade.cloud.api.deps import ID, Admin, SessionDep, require
from edgecascade.cloud.db.models import ModelVersion, Site, TrainingRun
from edgecascade.cloud.errors import TrainingInvalid, TrainingNotFound
from edgecascade.cloud.registry import card_of
from edgecascade.cloud.training import store

router = APIRouter(prefix="/api/training", tags=["training"])
viewer = [Depends(require("viewer"))]
ID_PATH = Path(pattern=ID, description="The run's id.")


class TrainingRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site: str = Field(pattern=ID, description="The site whose edge model is fine-tuned.")


class TrainingRunOut(BaseModel):
    """A training run, where it stands and why."""

    model_config = ConfigDict(from_attributes=True, frozen=True)

    id: str
    site: str = Field(validation_alias="site_id")
    state: str = Field(description="queued, running, succeeded, shipped, rejected or failed.")
    trigger: str = Field(description="Who or what queued it, and why.")
    parent_name: str | None
    parent_version: str | None
    child_version: str | None
    snapshot_id: str | None
    dataset_size: int | None
    metrics: dict[str, JsonValue] = Field(description="Before and after, as the trainer reported.")
    reason: str = Field(description="The gates' decision, or why it failed.")
    log: str
    trainer_id: str | None
    heartbeat_at: float | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    rollout_id: str | None


class TrainingRunList(BaseModel):
    items: list[TrainingRunOut]


class LineageNode(BaseModel):
    """A registered model and the parent it was fine-tuned from (None: not a fine-tune)."""

    model: str = Field(description="name@version.")
    parent: str | None
    created_at: float
    trainable: bool = Field(description="Whether it has a trainable source.")
    dataset_snapshot_id: str | None
    dataset_size: int | None
    holdout_before: float | None
    holdout_after: float | None
    original_before: float | None
    original_after: float | None


class LineageList(BaseModel):
    items: list[LineageNode]


@router.post("/runs", status_code=status.HTTP_201_CREATED)
def queue_run(body: TrainingRunIn, principal: Admin, session: SessionDep) -> TrainingRunOut:
    if session.get(Site, body.site) is None:
        raise TrainingInvalid(f"no site {body.site!r}")
    run = store.queue_run(session, body.site, f"by hand ({principal.name})", time.time())
    return TrainingRunOut.model_validate(run)


@router.get("/runs", dependencies=viewer)
def list_runs(
    session: SessionDep,
    site: Annotated[str | None, Query(pattern=ID, description="Only this site's runs.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> TrainingRunList:
    runs = store.list_runs(session, site, limit)
    return TrainingRunList(items=[TrainingRunOut.model_validate(run) for run in runs])


@router.get("/runs/{run_id}", dependencies=viewer)
def get_run(run_id: Annotated[str, ID_PATH], session: SessionDep) -> TrainingRunOut:
    run = session.get(TrainingRun, run_id)
    if run is None:
        raise TrainingNotFound(f"no training run {run_id!r}")
    return TrainingRunOut.model_validate(run)


@router.get("/lineage", dependencies=viewer)
def lineage(session: SessionDep) -> LineageList:
    """Every registered model with its parent: the versions' family tree, oldest first."""
    items = []
    for row in session.scalars(select(ModelVersion).order_by(ModelVersion.created_at)):
        card = card_of(row)
        line = card.lineage
        items.append(
            LineageNode(
                model=f"{row.name}@{row.version}",
                parent=line.parent if line is not None else None,
                created_at=row.created_at,
                trainable=card.trainable is not None,
                dataset_snapshot_id=line.dataset_snapshot_id if line is not None else None,
                dataset_size=line.dataset_size if line is not None else None,
                holdout_before=line.before.holdout_accuracy if line is not None else None,
                holdout_after=line.after.holdout_accuracy if line is not None else None,
                original_before=line.before.original_accuracy if line is not None else None,
                original_after=line.after.original_accuracy if line is not None else None,
            )
        )
    return LineageList(items=items)
