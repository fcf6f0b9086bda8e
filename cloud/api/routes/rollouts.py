"""``/api/rollouts``: start a staged rollout (operator), follow it, pause, resume or abort it
(operator)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from edgecascade.cloud.api.deps import Operator, ServicesDep, SessionDep, require
from edgecascade.cloud.api.schemas import AbortIn, PauseIn, RolloutList, RolloutOut
from edgecascade.cloud.db.models import Rollout
from edgecascade.cloud.rollouts import RolloutController, RolloutRequest, newest_acks

router = APIRouter(prefix="/api", tags=["rollouts"])
viewer = [Depends(require("viewer"))]


def _controller(services: ServicesDep) -> RolloutController:
    if services.rollouts is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "rollouts need the MQTT link: this process runs without ingest",
        )
    return services.rollouts


async def _act(action: Callable[..., Rollout], *args: object) -> RolloutOut:
    """Run a controller action off the event loop (a refusal propagates: cloud/api/errors.py
    answers it)."""
    rollout = await run_in_threadpool(action, *args)
    return RolloutOut.model_validate(rollout)


@router.post("/rollouts", status_code=status.HTTP_201_CREATED)
async def create_rollout(
    body: RolloutRequest, principal: Operator, services: ServicesDep
) -> RolloutOut:
    return await _act(_controller(services).create, body, principal.name)


@router.get("/rollouts", dependencies=viewer)
def list_rollouts(session: SessionDep) -> RolloutList:
    rows = session.scalars(select(Rollout).order_by(Rollout.created_at.desc()))
    return RolloutList(items=[RolloutOut.model_validate(row) for row in rows])


@router.get("/rollouts/{rollout_id}", dependencies=viewer)
def get_rollout(rollout_id: str, session: SessionDep) -> RolloutOut:
    row = session.get(Rollout, rollout_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no rollout {rollout_id!r}")
    acks = newest_acks(session, row)
    states = dict(acks.model)
    states.update({device: f"rollback {state}" for device, state in acks.rollback.items()})
    out = RolloutOut.model_validate(row)
    return out.model_copy(update={"device_states": states})


@router.post("/rollouts/{rollout_id}/abort")
async def abort_rollout(
    rollout_id: str, body: AbortIn, principal: Operator, services: ServicesDep
) -> RolloutOut:
    reason = f"aborted by {principal.name}" + (f": {body.reason}" if body.reason else "")
    return await _act(_controller(services).abort, rollout_id, reason)


@router.post("/rollouts/{rollout_id}/pause")
async def pause_rollout(
    rollout_id: str, body: PauseIn, principal: Operator, services: ServicesDep
) -> RolloutOut:
    """Hold a running rollout: no widening, no judging, until it is resumed or rolled back."""
    reason = f"paused by {principal.name}" + (f": {body.reason}" if body.reason else "")
    return await _act(_controller(services).pause, rollout_id, reason)


@router.post("/rollouts/{rollout_id}/resume")
async def resume_rollout(rollout_id: str, principal: Operator, services: ServicesDep) -> RolloutOut:
    """Let a paused rollout run again; the stage's minimum time starts over."""
    return await _act(_controller(services).resume, rollout_id)
