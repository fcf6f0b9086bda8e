"""The training runs' SQL: typed rows in, typed rows out, every state change conditional.

A trainer claims a run with ``UPDATE ... WHERE id = ? AND state = 'queued'``; of two trainers
that pick the same oldest run, only one updates a row and goes on to train it. A finished run is
written with ``WHERE state = 'running' AND trainer_id = ?``, so a trainer that was presumed dead
(and whose run was failed meanwhile) cannot resurrect it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from edgecascade.cloud.db.models import TrainingRun, Verdict


class RunState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # trained, evaluated and registered; no rollout started
    SHIPPED = "shipped"  # a rollout of the child started
    REJECTED = "rejected"  # the gates said no
    FAILED = "failed"


ACTIVE = (RunState.QUEUED, RunState.RUNNING)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ended: the columns the trainer writes last."""

    state: RunState
    reason: str
    child_version: str | None = None
    rollout_id: str | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    """What a running run has learnt so far (``None``: left as it is)."""

    parent_name: str | None = None
    parent_version: str | None = None
    snapshot_id: str | None = None
    dataset_size: int | None = None
    metrics: dict[str, Any] | None = None

    def values(self) -> dict[str, Any]:
        out = {
            "parent_name": self.parent_name,
            "parent_version": self.parent_version,
            "snapshot_id": self.snapshot_id,
            "dataset_size": self.dataset_size,
            "metrics": self.metrics,
        }
        return {column: value for column, value in out.items() if value is not None}


def queue_run(session: Session, site: str, trigger: str, now: float) -> TrainingRun:
    """A new queued run of ``site``; committed."""
    row = TrainingRun(
        id=f"tr-{uuid.uuid4().hex[:12]}",
        site_id=site,
        state=RunState.QUEUED.value,
        trigger=trigger,
        metrics={},
        reason="",
        log="",
        created_at=now,
    )
    session.add(row)
    session.commit()
    return row


def list_runs(session: Session, site: str | None = None, limit: int = 100) -> Sequence[TrainingRun]:
    query = select(TrainingRun).order_by(TrainingRun.created_at.desc()).limit(limit)
    if site is not None:
        query = query.where(TrainingRun.site_id == site)
    return session.scalars(query).all()


def has_active_run(session: Session, site: str) -> bool:
    return (
        session.scalar(
            select(TrainingRun.id)
            .where(TrainingRun.site_id == site, TrainingRun.state.in_(ACTIVE))
            .limit(1)
        )
        is not None
    )


def last_run_at(session: Session, site: str) -> float | None:
    value: float | None = session.scalar(
        select(func.max(TrainingRun.created_at)).where(TrainingRun.site_id == site)
    )
    return value


def claim_oldest(engine: Engine, trainer_id: str, now: float) -> str | None:
    """Claim the oldest queued run for ``trainer_id``; its id, or None when there is none (or
    another trainer took each candidate first)."""
    with Session(engine) as session:
        candidates = session.scalars(
            select(TrainingRun.id)
            .where(TrainingRun.state == RunState.QUEUED.value)
            .order_by(TrainingRun.created_at, TrainingRun.id)
            .limit(5)
        ).all()
        for run_id in candidates:
            claimed = session.execute(
                update(TrainingRun)
                .where(TrainingRun.id == run_id, TrainingRun.state == RunState.QUEUED.value)
                .values(
                    state=RunState.RUNNING.value,
                    trainer_id=trainer_id,
                    started_at=now,
                    heartbeat_at=now,
                )
            )
            session.commit()
            if _updated(claimed):
                return run_id
    return None


def _updated(result: object) -> bool:
    """Whether a conditional UPDATE changed a row (rowcount is on the CursorResult)."""
    return bool(getattr(result, "rowcount", 0) == 1)


def _running(run_id: str, trainer_id: str) -> Any:
    return (
        (TrainingRun.id == run_id)
        & (TrainingRun.state == RunState.RUNNING.value)
        & (TrainingRun.trainer_id == trainer_id)
    )


def heartbeat(engine: Engine, run_id: str, trainer_id: str, now: float, log: str) -> bool:
    """Say the run is alive (and save its log so far); False when it is no longer ours."""
    with Session(engine) as session:
        done = session.execute(
            update(TrainingRun)
            .where(_running(run_id, trainer_id))
            .values(heartbeat_at=now, log=log)
        )
        session.commit()
        return _updated(done)


def record_progress(engine: Engine, run_id: str, trainer_id: str, progress: Progress) -> None:
    with Session(engine) as session:
        session.execute(
            update(TrainingRun).where(_running(run_id, trainer_id)).values(**progress.values())
        )
        session.commit()


def finish(
    session: Session, run_id: str, trainer_id: str, outcome: Outcome, log: str, now: float
) -> bool:
    """Write how the run ended; False when it was not ours any more (failed as stale)."""
    values: dict[str, Any] = {
        "state": outcome.state.value,
        "reason": outcome.reason,
        "log": log,
        "finished_at": now,
        "heartbeat_at": now,
    }
    if outcome.child_version is not None:
        values["child_version"] = outcome.child_version
    if outcome.rollout_id is not None:
        values["rollout_id"] = outcome.rollout_id
    done = session.execute(update(TrainingRun).where(_running(run_id, trainer_id)).values(**values))
    session.commit()
    return _updated(done)


def fail_stale(engine: Engine, stale_after_s: float, now: float) -> list[str]:
    """Fail running runs whose heartbeat is older than ``stale_after_s``; their ids."""
    failed = []
    with Session(engine) as session:
        stale = session.scalars(
            select(TrainingRun).where(
                TrainingRun.state == RunState.RUNNING.value,
                TrainingRun.heartbeat_at < now - stale_after_s,
            )
        ).all()
        for run in stale:
            beat = run.heartbeat_at or 0.0
            done = session.execute(
                update(TrainingRun)
                .where(
                    TrainingRun.id == run.id,
                    TrainingRun.state == RunState.RUNNING.value,
                    TrainingRun.heartbeat_at == run.heartbeat_at,
                )
                .values(
                    state=RunState.FAILED.value,
                    reason=f"trainer stopped mid-run (heartbeat {now - beat:.0f}s old, "
                    f"trainer {run.trainer_id})",
                    finished_at=now,
                )
            )
            if _updated(done):
                failed.append(run.id)
        session.commit()
    return failed


@dataclass(frozen=True, slots=True)
class VerdictCounts:
    total: int  # every verdict: escalations and audit samples (each one a training sample)
    escalated: int  # of those, on escalated frames
    disagreeing: int  # of the escalated ones, the cloud disagreeing with the edge


def verdict_counts(session: Session, site: str, since: float | None) -> VerdictCounts:
    """Classification verdicts of ``site`` created at or after ``since`` (all when None); the
    disagreement is counted on escalated frames only (audit samples measure accuracy, not this
    trigger). Detection verdicts are no training samples of the site's classifier."""
    escalated = Verdict.audit.is_(False)
    query = select(
        func.count(),
        func.count().filter(escalated),
        func.count().filter(escalated, Verdict.agrees.is_(False)),
    ).where(Verdict.site_id == site, Verdict.task == "classification")
    if since is not None:
        query = query.where(Verdict.created_at >= since)
    total, escalated_count, disagreeing = session.execute(query).one()
    return VerdictCounts(int(total), int(escalated_count), int(disagreeing))
