"""The rollouts' SQL: what the controller reads and the conditional updates it writes.

Everything returns typed values (ORM rows, :class:`~cloud.rollouts.decide.Acks`,
:class:`~cloud.rollouts.decide.Comparison`). A state change is one conditional ``UPDATE ... WHERE
state = ... AND stage = ...``: of two controllers (replicas) acting on one transition, only one
updates a row, and only that one goes on to publish.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Engine, case, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from edgecascade.cloud.db.fleet_models import DeviceTags
from edgecascade.cloud.db.models import (
    Device,
    ModelAck,
    ModelVersion,
    Result,
    Rollout,
    Verdict,
)
from edgecascade.cloud.rollouts.decide import (
    WATCHED,
    Acks,
    Comparison,
    Figures,
    RolloutState,
    RolloutView,
    rollback_id,
)
from edgecascade.cloud.settings import RolloutCriteria

LATENCY_SAMPLES = 1000  # the newest results whose invoke times give the median


@dataclass(frozen=True, slots=True)
class Change:
    """The columns a transition sets (``None``: left as it is)."""

    state: RolloutState | None = None
    reason: str | None = None
    stage: int | None = None
    offered: list[str] | None = None
    stage_started_at: float | None = None
    evaluation: Comparison | None = None

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "state": self.state.value if self.state is not None else None,
            "reason": self.reason,
            "stage": self.stage,
            "offered": self.offered,
            "stage_started_at": self.stage_started_at,
            "evaluation": self.evaluation.to_json() if self.evaluation is not None else None,
        }
        return {column: value for column, value in out.items() if value is not None}


def view(row: Rollout) -> RolloutView:
    """The decision's snapshot of a row."""
    return RolloutView(
        id=row.id,
        state=RolloutState(row.state),
        targets=list(row.targets),
        stages=[float(p) for p in row.stages],
        stage=row.stage,
        stage_started_at=row.stage_started_at,
        offered=list(row.offered),
        criteria=RolloutCriteria.model_validate(row.criteria),
    )


def newest_acks(session: Session, rollout: Rollout) -> Acks:
    """The newest ack status per device: of the rollout's offer and of its rollback's."""
    back = rollback_id(rollout.id)
    rows = session.execute(
        select(ModelAck.rollout_id, ModelAck.device_id, ModelAck.status)
        .where(ModelAck.rollout_id.in_((rollout.id, back)), ModelAck.site_id == rollout.site_id)
        .order_by(ModelAck.ts)
    ).all()
    model: dict[str, str] = {}
    rollback: dict[str, str] = {}
    for offer_id, device, status in rows:
        (rollback if offer_id == back else model)[device] = status
    return Acks(model=model, rollback=rollback)


class RolloutStore:
    """The controller's reads and writes, each in a session of its own."""

    def __init__(self, engine: Engine) -> None:
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    def watched(self) -> list[str]:
        """The ids of the rollouts the controller's loop visits (running or rolling back)."""
        with self.sessions() as session:
            states = [state.value for state in WATCHED]
            return list(session.scalars(select(Rollout.id).where(Rollout.state.in_(states))))

    def get(self, rollout_id: str) -> Rollout | None:
        with self.sessions() as session:
            return session.get(Rollout, rollout_id)

    def add(self, rollout: Rollout) -> None:
        with self.sessions() as session:
            session.add(rollout)
            session.commit()

    def acks(self, rollout: Rollout) -> Acks:
        with self.sessions() as session:
            return newest_acks(session, rollout)

    def model(self, name: str, version: str) -> ModelVersion | None:
        with self.sessions() as session:
            return session.get(ModelVersion, (name, version))

    def model_by_sha(self, sha256: str) -> ModelVersion | None:
        with self.sessions() as session:
            return session.scalar(select(ModelVersion).where(ModelVersion.sha256 == sha256))

    def cameras(self, site: str, devices: Sequence[str] | None) -> list[Device]:
        """The site's cameras (agents), only ``devices`` of them if given, by id."""
        query = select(Device).where(Device.site_id == site, Device.role == "agent")
        if devices is not None:
            query = query.where(Device.device_id.in_(devices))
        with self.sessions() as session:
            return list(session.scalars(query.order_by(Device.device_id)))

    def tags(self, site: str) -> dict[str, list[str]]:
        """The tags of the site's devices, by device id."""
        query = select(DeviceTags).where(DeviceTags.site_id == site)
        with self.sessions() as session:
            return {row.device_id: list(row.tags) for row in session.scalars(query)}

    def transition(
        self, rollout: Rollout, expected: RolloutState, change: Change, now: float
    ) -> bool:
        """Apply ``change`` if ``rollout`` is still ``expected`` at the same stage; whether it
        was (``False``: another controller, or an operator, got there first)."""
        with self.sessions() as session:
            done = session.execute(
                update(Rollout)
                .where(
                    Rollout.id == rollout.id,
                    Rollout.state == expected.value,
                    Rollout.stage == rollout.stage,
                )
                .values(updated_at=now, **change.values())
            )
            session.commit()
        return bool(done.rowcount)  # type: ignore[attr-defined]

    def measure(self, rollout: Rollout, baseline_lookback_s: float, now: float) -> Comparison:
        """The new model since the rollout began against the baseline on this site since
        ``baseline_lookback_s`` before that."""
        since = rollout.created_at
        with self.sessions() as session:
            new = figures(
                session, rollout.site_id, rollout.model_name, rollout.model_version, since
            )
            baseline = figures(
                session,
                rollout.site_id,
                rollout.baseline_name,
                rollout.baseline_version,
                since - baseline_lookback_s,
            )
        return Comparison(at=now, new=new, baseline=baseline)


def figures(session: Session, site: str, name: str, version: str, since: float) -> Figures:
    """One model's verdicts, results and median invoke time on ``site`` since ``since``."""
    judged = (
        Verdict.site_id == site,
        Verdict.edge_model_name == name,
        Verdict.edge_model_version == version,
        Verdict.created_at >= since,
        Verdict.audit.is_(False),  # escalations: the audit samples are cloud.accuracy's
    )
    ran = (
        Result.site_id == site,
        Result.model_name == name,
        Result.model_version == version,
        Result.received_at >= since,
    )
    disagreed = func.sum(case((Verdict.agrees.is_(False), 1), else_=0))
    verdicts = session.execute(select(func.count(), disagreed).where(*judged)).one()
    boxes = session.execute(
        select(func.avg(Verdict.edge_precision), func.avg(Verdict.edge_recall)).where(
            *judged, Verdict.task == "detection"
        )
    ).one()
    escalated = func.sum(case((Result.escalated.is_(True), 1), else_=0))
    results = session.execute(select(func.count(), escalated).where(*ran)).one()
    latencies = session.scalars(
        select(Result.latency)
        .where(*ran)
        .order_by(Result.received_at.desc())
        .limit(LATENCY_SAMPLES)
    ).all()
    invokes = [float(x["invoke"]) for x in latencies if "invoke" in x]
    n_verdicts, n_disagreed = int(verdicts[0]), int(verdicts[1] or 0)
    n_results, n_escalated = int(results[0]), int(results[1] or 0)
    return Figures(
        model=f"{name} {version}",
        verdicts=n_verdicts,
        disagreement=n_disagreed / n_verdicts if n_verdicts else None,
        results=n_results,
        escalation_rate=n_escalated / n_results if n_results else None,
        invoke_ms_p50=float(np.median(invokes)) if invokes else None,
        edge_precision=float(boxes[0]) if boxes[0] is not None else None,
        edge_recall=float(boxes[1]) if boxes[1] is not None else None,
    )
