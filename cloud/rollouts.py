"""Staged rollouts: canary, widening, and automatic rollback on measured regressions.

A rollout offers a registered model to the devices of a site in stages (percentages of the
targets, e.g. 10, 50, 100). The targets' current model is the *baseline*: it must be in the
registry, because rolling back means offering it again. Every ``rollouts.interval_s`` the
controller looks at each running rollout:

- the devices' acks (``model_acks``): too many ``failed`` -> roll back;
- quality against the baseline (since the rollout began; the baseline also over
  ``baseline_lookback_s`` before it), from what the fleet reports: the share of
  escalations the cloud disagrees with (``verdicts``), the escalation rate and the median invoke
  time (``results``). A regression beyond ``criteria`` -> roll back, with the figures as the
  reason. Nothing is judged on fewer than ``min_verdicts`` / ``min_results`` samples;
- otherwise, once the stage has run ``stage_min_s``, every device offered has applied the model
  and both models have enough verdicts to compare, the next stage's devices get the offer;
  after the last stage the rollout is ``completed``.

An operator can pause a running rollout (the controller leaves it alone: nothing widens, nothing
is judged, no automatic rollback) and resume it (the stage's clock starts again), or roll it back
while it runs or is paused.

Rolling back offers the baseline manifest (rollout id ``<id>-rb``) to every device that was
offered the new model; the rollout is ``rolled_back`` once they all report it applied. State
changes are conditional updates (``WHERE state = ... AND stage = ...``), so two controllers
(replicas) never both act on one transition; offers are idempotent on the device.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import uuid
from collections import Counter
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, Field
from sqlalchemy import Engine, case, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from cloud.db.models import Device, ModelAck, ModelVersion, Result, Rollout, Verdict
from cloud.errors import CloudError
from cloud.periodic import PeriodicPublisher
from cloud.registry import manifest_of
from cloud.settings import CloudSettings, RolloutCriteria
from shared.codec import encode
from shared.messages import NO_NUL, ModelManifest, ModelOfferMessage
from shared.mqtt import Outgoing
from shared.topics import ID_PATTERN, Kind, ModelSub, topic

logger = logging.getLogger(__name__)

APPLIED = ("applied", "committed")
CONFIRM_TIMEOUT_S = 10.0


class RolloutError(CloudError):
    """A rollout that cannot be started or changed as asked; ``status`` fits HTTP."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class RolloutRequest(BaseModel):
    """What to roll out, where, how fast, and with which limits."""

    model_name: str = Field(pattern=ID_PATTERN)
    model_version: str = Field(min_length=1, max_length=64, pattern=NO_NUL)
    site: str = Field(pattern=ID_PATTERN)
    devices: list[Annotated[str, Field(pattern=ID_PATTERN)]] | None = Field(
        None, description="Only these devices of the site (default: every camera of it)."
    )
    stages: list[Annotated[float, Field(allow_inf_nan=False)]] = Field(
        [10.0, 50.0, 100.0], min_length=1, max_length=20, description="Percent of the targets."
    )
    criteria: dict[str, float] = Field({}, description="Overrides of rollouts.criteria.")


class RolloutController(PeriodicPublisher):
    """Starts, evaluates, widens and rolls back rollouts; one per cloud process."""

    def __init__(self, engine: Engine, settings: CloudSettings) -> None:
        super().__init__("rollouts", settings, settings.rollouts.interval_s)
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        self._waiting_since: dict[tuple[str, str], float] = {}

    def tick(self) -> None:
        self.evaluate_all()

    def evaluate_all(self) -> None:
        with self.sessions() as session:
            ids = session.scalars(
                select(Rollout.id).where(Rollout.state.in_(("running", "rolling_back")))
            ).all()
        watched = set(ids)
        for key in [k for k in self._waiting_since if k[0].removesuffix("-rb") not in watched]:
            del self._waiting_since[key]
        for rollout_id in ids:
            try:
                self.evaluate(rollout_id)
            except Exception:  # one bad rollout must not stop the others being watched
                self.counts["errors"] += 1
                logger.exception("rollout %s: evaluation failed", rollout_id)

    # -- starting and stopping ---------------------------------------------------------------------
    def create(self, request: RolloutRequest, created_by: str) -> Rollout:
        stages = request.stages
        if any(not 0 < p <= 100 for p in stages) or stages != sorted(set(stages)):
            raise RolloutError(f"stages must increase within (0, 100], got {stages}", 422)
        try:
            criteria = RolloutCriteria.model_validate(
                {**self.settings.rollouts.criteria.model_dump(), **request.criteria}
            )
        except ValueError as exc:
            raise RolloutError(f"invalid criteria: {exc}", 422) from None
        with self.sessions() as session:
            model = session.get(ModelVersion, (request.model_name, request.model_version))
            if model is None:
                raise RolloutError(
                    f"no model {request.model_name} {request.model_version} in the registry", 404
                )
            query = select(Device).where(Device.site_id == request.site, Device.role == "agent")
            if request.devices is not None:
                query = query.where(Device.device_id.in_(request.devices))
            devices = session.scalars(query.order_by(Device.device_id)).all()
            if not devices:
                raise RolloutError(f"no cameras of site {request.site!r} match", 422)
            missing = set(request.devices or ()) - {d.device_id for d in devices}
            if missing:
                raise RolloutError(f"unknown devices of {request.site}: {sorted(missing)}", 422)
            running = Counter(d.model_sha256 for d in devices if d.model_sha256)
            if not running:
                raise RolloutError("the targets have not reported their model yet", 409)
            baseline_sha = running.most_common(1)[0][0]
            if baseline_sha == model.sha256:
                raise RolloutError(f"the targets run {model.name} {model.version} already", 409)
            baseline = session.scalar(
                select(ModelVersion).where(ModelVersion.sha256 == baseline_sha)
            )
            if baseline is None:
                d = next(d for d in devices if d.model_sha256 == baseline_sha)
                raise RolloutError(
                    f"the targets run {d.model_name} {d.model_version} ({baseline_sha[:12]}), "
                    "which is not in the registry: register it first, so the rollout can "
                    "roll back to it",
                    409,
                )
            rollout_id = f"ro-{uuid.uuid4().hex[:12]}"
            # A stable spread: the order the stages take devices in.
            targets = sorted(
                (d.device_id for d in devices),
                key=lambda name: hashlib.sha256(f"{rollout_id}/{name}".encode()).digest(),
            )
            now = time.time()
            rollout = Rollout(
                id=rollout_id,
                site_id=request.site,
                targets=targets,
                model_name=model.name,
                model_version=model.version,
                sha256=model.sha256,
                baseline_name=baseline.name,
                baseline_version=baseline.version,
                baseline_sha256=baseline.sha256,
                stages=stages,
                stage=0,
                stage_started_at=now,
                criteria=criteria.model_dump(),
                state="running",
                reason="",
                evaluation={},
                offered=stage_devices(targets, stages[0]),
                created_at=now,
                updated_at=now,
                created_by=created_by,
            )
            session.add(rollout)
            session.commit()
        self._send_offers(self.get(rollout_id), [])
        logger.info(
            "rollout %s: %s %s to %d device(s) of %s in stages %s",
            rollout_id,
            model.name,
            model.version,
            len(targets),
            request.site,
            stages,
        )
        return self.get(rollout_id)

    def get(self, rollout_id: str) -> Rollout:
        with self.sessions() as session:
            rollout = session.get(Rollout, rollout_id)
        if rollout is None:
            raise RolloutError(f"no rollout {rollout_id!r}", 404)
        return rollout

    def abort(self, rollout_id: str, reason: str) -> Rollout:
        """Roll back now (an operator's call, or a failed criterion), running or paused."""
        rollout = self.get(rollout_id)
        if rollout.state not in ("running", "paused"):
            raise RolloutError(
                f"rollout {rollout_id} is {rollout.state}, neither running nor paused", 409
            )
        self._roll_back(rollout, reason)
        return self.get(rollout_id)

    def pause(self, rollout_id: str, reason: str) -> Rollout:
        """Hold a running rollout where it is: the devices keep what they have."""
        rollout = self.get(rollout_id)
        if rollout.state != "running":
            raise RolloutError(f"rollout {rollout_id} is {rollout.state}, not running", 409)
        if not self._transition(rollout, "running", state="paused", reason=reason):
            raise RolloutError(f"rollout {rollout_id} changed meanwhile; try again", 409)
        logger.info("rollout %s paused: %s", rollout_id, reason)
        return self.get(rollout_id)

    def resume(self, rollout_id: str) -> Rollout:
        """Let a paused rollout run again; its stage's minimum time starts over."""
        rollout = self.get(rollout_id)
        if rollout.state != "paused":
            raise RolloutError(f"rollout {rollout_id} is {rollout.state}, not paused", 409)
        if not self._transition(
            rollout, "paused", state="running", reason="", stage_started_at=time.time()
        ):
            raise RolloutError(f"rollout {rollout_id} changed meanwhile; try again", 409)
        logger.info("rollout %s resumed", rollout_id)
        return self.get(rollout_id)

    # -- the loop ------------------------------------------------------------------------------
    def evaluate(self, rollout_id: str) -> None:
        rollout = self.get(rollout_id)
        if rollout.state not in ("running", "rolling_back"):
            return  # paused (or finished) since it was listed
        acks = self._acks(rollout)
        if rollout.state == "rolling_back":
            back = [
                d for d in rollout.offered if acks.get(f"{rollout.id}-rb", {}).get(d) in APPLIED
            ]
            if len(back) == len(rollout.offered):
                self._transition(rollout, "rolling_back", state="rolled_back")
            else:
                self._resend(rollout, f"{rollout.id}-rb", rollout.baseline_sha256, acks)
            return
        self._resend(rollout, rollout.id, rollout.sha256, acks)
        criteria = RolloutCriteria.model_validate(rollout.criteria)
        mine = acks.get(rollout.id, {})
        failed = [d for d in rollout.offered if mine.get(d) == "failed"]
        if rollout.offered and len(failed) / len(rollout.offered) > criteria.max_failure_rate:
            self._roll_back(
                rollout,
                f"{len(failed)} of {len(rollout.offered)} devices failed to apply the model "
                f"(allowed {criteria.max_failure_rate:.0%}): {', '.join(sorted(failed))}",
            )
            return
        evaluation = self.measure(rollout, criteria.baseline_lookback_s)
        regression = self._regression(evaluation, criteria)
        if regression:
            self._roll_back(rollout, regression, evaluation)
            return
        applied = [d for d in rollout.offered if mine.get(d) in APPLIED]
        waiting = []
        if len(applied) < len(rollout.offered):
            waiting.append(f"{len(rollout.offered) - len(applied)} device(s) to apply the model")
        for side in ("new", "baseline"):  # never widen on what was not compared
            if evaluation[side]["verdicts"] < criteria.min_verdicts:
                waiting.append(
                    f"{criteria.min_verdicts} verdicts on {evaluation[side]['model']} "
                    f"({evaluation[side]['verdicts']} so far)"
                )
        remaining = rollout.stage_started_at + criteria.stage_min_s - time.time()
        if remaining > 0:
            waiting.append(f"{remaining:.0f} s of the stage")
        if waiting:
            self._note(rollout, "waiting for " + ", ".join(waiting), evaluation)
            return
        if rollout.stage + 1 >= len(rollout.stages):
            self._transition(
                rollout, "running", state="completed", reason="", evaluation=evaluation
            )
            logger.info("rollout %s completed", rollout.id)
            return
        # The next stage and the devices it offers to are one conditional update: a replica
        # that rolls back at the same moment either sees both or neither, so every device
        # offered the model is also offered the rollback.
        stage = rollout.stage + 1
        offered = [
            *rollout.offered,
            *(
                d
                for d in stage_devices(rollout.targets, rollout.stages[stage])
                if d not in rollout.offered
            ),
        ]
        if self._transition(
            rollout,
            "running",
            stage=stage,
            offered=offered,
            stage_started_at=time.time(),
            evaluation=evaluation,
        ):
            self._send_offers(self.get(rollout.id), rollout.offered)

    def measure(self, rollout: Rollout, baseline_lookback_s: float = 0.0) -> dict[str, Any]:
        """The new model since the rollout began against the baseline on this site since
        ``baseline_lookback_s`` before that."""
        sides = {
            "new": (rollout.model_name, rollout.model_version, rollout.created_at),
            "baseline": (
                rollout.baseline_name,
                rollout.baseline_version,
                rollout.created_at - baseline_lookback_s,
            ),
        }
        out: dict[str, Any] = {"at": time.time()}
        with self.sessions() as session:
            for side, (name, version, since) in sides.items():
                judged = (
                    Verdict.site_id == rollout.site_id,
                    Verdict.edge_model_name == name,
                    Verdict.edge_model_version == version,
                    Verdict.created_at >= since,
                )
                ran = (
                    Result.site_id == rollout.site_id,
                    Result.model_name == name,
                    Result.model_version == version,
                    Result.received_at >= since,
                )
                verdicts = session.execute(
                    select(
                        func.count(), func.sum(case((Verdict.agrees.is_(False), 1), else_=0))
                    ).where(*judged)
                ).one()
                results = session.execute(
                    select(
                        func.count(), func.sum(case((Result.escalated.is_(True), 1), else_=0))
                    ).where(*ran)
                ).one()
                latencies = session.scalars(
                    select(Result.latency)
                    .where(*ran)
                    .order_by(Result.received_at.desc())
                    .limit(1000)
                ).all()
                invokes = [float(x["invoke"]) for x in latencies if "invoke" in x]
                n_verdicts, disagreed = int(verdicts[0]), int(verdicts[1] or 0)
                n_results, escalated = int(results[0]), int(results[1] or 0)
                out[side] = {
                    "model": f"{name} {version}",
                    "verdicts": n_verdicts,
                    "disagreement": disagreed / n_verdicts if n_verdicts else None,
                    "results": n_results,
                    "escalation_rate": escalated / n_results if n_results else None,
                    "invoke_ms_p50": float(np.median(invokes)) if invokes else None,
                }
        return out

    @staticmethod
    def _regression(evaluation: dict[str, Any], c: RolloutCriteria) -> str:
        new, base = evaluation["new"], evaluation["baseline"]
        if new["verdicts"] >= c.min_verdicts and base["verdicts"] >= c.min_verdicts:
            rise = new["disagreement"] - base["disagreement"]
            if rise > c.max_disagreement_increase:
                return (
                    f"the cloud disagrees with {new['disagreement']:.0%} of {new['model']}'s "
                    f"escalations ({new['verdicts']} verdicts) against {base['disagreement']:.0%} "
                    f"of {base['model']}'s ({base['verdicts']}): +{rise:.0%}, allowed "
                    f"+{c.max_disagreement_increase:.0%}"
                )
        if new["results"] >= c.min_results and base["results"] >= c.min_results:
            rise = new["escalation_rate"] - base["escalation_rate"]
            if rise > c.max_escalation_increase:
                return (
                    f"{new['model']} escalates {new['escalation_rate']:.0%} of {new['results']} "
                    f"results against {base['escalation_rate']:.0%} for {base['model']}: "
                    f"+{rise:.0%}, allowed +{c.max_escalation_increase:.0%}"
                )
            if new["invoke_ms_p50"] and base["invoke_ms_p50"]:
                ratio = new["invoke_ms_p50"] / base["invoke_ms_p50"]
                if ratio > c.max_latency_ratio:
                    return (
                        f"{new['model']} takes {new['invoke_ms_p50']:.2f} ms per invoke (median) "
                        f"against {base['invoke_ms_p50']:.2f} ms: x{ratio:.1f}, allowed "
                        f"x{c.max_latency_ratio:g}"
                    )
        return ""

    # -- helpers ---------------------------------------------------------------------------------
    def _acks(self, rollout: Rollout) -> dict[str, dict[str, str]]:
        with self.sessions() as session:
            return newest_acks(session, rollout)

    def _manifest(self, sha256: str) -> ModelManifest:
        with self.sessions() as session:
            row = session.scalar(select(ModelVersion).where(ModelVersion.sha256 == sha256))
        if row is None:
            raise RolloutError(f"model {sha256[:12]} left the registry", 409)
        return manifest_of(row)

    def _send_offers(self, rollout: Rollout, already: list[str]) -> None:
        """Offer the model to the devices of the current stage not offered before."""
        new = [d for d in rollout.offered if d not in already]
        self._send(rollout, new, self._manifest(rollout.sha256), rollout.id)
        logger.info(
            "rollout %s stage %d (%g%%): offered to %s",
            rollout.id,
            rollout.stage,
            rollout.stages[rollout.stage],
            ", ".join(new) or "nobody new",
        )

    def _resend(
        self, rollout: Rollout, offer_id: str, sha256: str, acks: dict[str, dict[str, str]]
    ) -> None:
        """Offer ``offer_id`` again to the devices that have not answered it for ``resend_s``
        (counted from when this controller first saw them waiting)."""
        now = time.time()
        answered = acks.get(offer_id, {})
        due = []
        for device in rollout.offered:
            key = (offer_id, device)
            if device in answered:
                self._waiting_since.pop(key, None)
                continue
            since = self._waiting_since.setdefault(key, now)
            if now - since >= self.settings.rollouts.resend_s:
                due.append(device)
                self._waiting_since[key] = now
        if due:
            logger.warning(
                "rollout %s: no answer from %s, offering %s again",
                rollout.id,
                ", ".join(due),
                offer_id,
            )
            self.counts["resent"] += len(due)
            self._send(rollout, due, self._manifest(sha256), offer_id)

    def _roll_back(
        self, rollout: Rollout, reason: str, evaluation: dict[str, Any] | None = None
    ) -> None:
        values: dict[str, Any] = {"state": "rolling_back", "reason": reason}
        if evaluation is not None:
            values["evaluation"] = evaluation
        if not self._transition(rollout, rollout.state, **values):
            return  # another controller did it
        logger.warning("rollout %s: rolling back: %s", rollout.id, reason)
        self.counts["rollbacks"] += 1
        self._send(
            rollout, rollout.offered, self._manifest(rollout.baseline_sha256), f"{rollout.id}-rb"
        )

    def _send(
        self, rollout: Rollout, devices: list[str], manifest: ModelManifest, rollout_id: str
    ) -> None:
        infos = []
        for device in devices:
            offer = ModelOfferMessage(rollout_id=rollout_id, manifest=manifest)
            wire = topic(
                rollout.site_id,
                device,
                Kind.MODEL,
                ModelSub.OFFER,
                prefix=self.settings.mqtt.prefix,
            )
            infos.append(self._link.publish(Outgoing(wire, encode(offer))))
        if not all(self._link.confirm(info, CONFIRM_TIMEOUT_S) for info in infos):
            logger.warning("rollout %s: offers not confirmed by the broker", rollout.id)

    def _transition(self, rollout: Rollout, expected: str, **values: Any) -> bool:
        """Update ``rollout`` if it is still in state ``expected`` at the same stage."""
        with self.sessions() as session:
            done = session.execute(
                update(Rollout)
                .where(
                    Rollout.id == rollout.id,
                    Rollout.state == expected,
                    Rollout.stage == rollout.stage,
                )
                .values(updated_at=time.time(), **values)
            )
            session.commit()
        return bool(done.rowcount)  # type: ignore[attr-defined]

    def _note(self, rollout: Rollout, reason: str, evaluation: dict[str, Any]) -> None:
        self._transition(rollout, "running", reason=reason, evaluation=evaluation)


def stage_devices(targets: list[str], percent: float) -> list[str]:
    """The devices a stage covers: the first ``percent`` of the targets, at least one."""
    return targets[: max(1, math.ceil(percent / 100 * len(targets)))]


def newest_acks(session: Session, rollout: Rollout) -> dict[str, dict[str, str]]:
    """The newest ack status per device, keyed by rollout id: the rollout's and its rollback's."""
    out: dict[str, dict[str, str]] = {}
    rows = session.execute(
        select(ModelAck.rollout_id, ModelAck.device_id, ModelAck.status)
        .where(
            ModelAck.rollout_id.in_((rollout.id, f"{rollout.id}-rb")),
            ModelAck.site_id == rollout.site_id,
        )
        .order_by(ModelAck.ts)
    ).all()
    for rollout_id, device, status in rows:
        out.setdefault(rollout_id, {})[device] = status
    return out
