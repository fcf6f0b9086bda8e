"""The rollout controller: reads, decides (``decide.py``), writes and publishes; nothing else.

Operators' calls (create, pause, resume, abort) come from the API; every ``rollouts.interval_s``
:meth:`RolloutController.tick` visits each running or rolling back rollout. Offers go out only
after the conditional update that decided them succeeded, so of two replicas only one sends
them; an offer that gets no answer within ``rollouts.resend_s`` is sent again (offers are
idempotent on the device).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from sqlalchemy import Engine

from edgecascade.cloud.db.models import Rollout
from edgecascade.cloud.errors import RolloutConflict, RolloutNotFound
from edgecascade.cloud.periodic import PeriodicPublisher
from edgecascade.cloud.registry import manifest_of, signing_key
from edgecascade.cloud.rollouts import plan
from edgecascade.cloud.rollouts.decide import (
    Acks,
    Complete,
    Decision,
    Evaluation,
    Leave,
    RollBack,
    RolloutState,
    Wait,
    Widen,
    decide,
    rollback_id,
    rollback_settled,
)
from edgecascade.cloud.rollouts.plan import RolloutRequest
from edgecascade.cloud.rollouts.store import Change, RolloutStore, view
from edgecascade.cloud.settings import CloudSettings
from edgecascade.shared.codec import encode
from edgecascade.shared.manifest import OfferSequence, sign_offer
from edgecascade.shared.model_messages import ModelManifest, ModelOfferMessage
from edgecascade.shared.mqtt import Outgoing
from edgecascade.shared.topics import Kind, ModelSub, topic

logger = logging.getLogger(__name__)

CONFIRM_TIMEOUT_S = 10.0
RUNNING, PAUSED = RolloutState.RUNNING, RolloutState.PAUSED


class RolloutController(PeriodicPublisher):
    """Starts, evaluates, widens and rolls back rollouts; one per cloud process."""

    def __init__(self, engine: Engine, settings: CloudSettings) -> None:
        super().__init__("rollouts", settings, settings.rollouts.interval_s)
        self.engine = engine
        self.store = RolloutStore(engine)
        # When this controller first saw each (rollout, offer id, device) unanswered.
        self._waiting_since: dict[tuple[str, str, str], float] = {}
        self._sequence = OfferSequence()

    def tick(self) -> None:
        self.evaluate_all()

    def evaluate_all(self) -> None:
        ids = self.store.watched()
        for key in [k for k in self._waiting_since if k[0] not in ids]:
            del self._waiting_since[key]
        for rollout_id in ids:
            try:
                self.evaluate(rollout_id)
            except Exception:  # one bad rollout must not stop the others being watched
                self.counts["errors"] += 1
                logger.exception("rollout %s: evaluation failed", rollout_id)

    # -- an operator's calls --------------------------------------------------------------------
    def create(self, request: RolloutRequest, created_by: str) -> Rollout:
        criteria = plan.criteria_of(request, self.settings.rollouts.criteria)
        model = self.store.model(request.model_name, request.model_version)
        if model is None:
            raise RolloutNotFound(
                f"no model {request.model_name} {request.model_version} in the registry"
            )
        devices = self.store.cameras(request.site, request.devices)
        if request.tags is not None:
            devices = plan.tagged(request, devices, self.store.tags(request.site))
        plan.check_targets(request, devices)
        baseline_sha = plan.baseline_sha(devices, model)
        baseline = self.store.model_by_sha(baseline_sha)
        if baseline is None:
            raise plan.unregistered(devices, baseline_sha)
        row = plan.new_rollout(request, model, baseline, devices, criteria, created_by, time.time())
        self.store.add(row)
        self._offer(self.get(row.id), already=[])
        logger.info(
            "rollout %s: %s %s to %d device(s) of %s in stages %s",
            row.id,
            model.name,
            model.version,
            len(row.targets),
            request.site,
            request.stages,
        )
        return self.get(row.id)

    def get(self, rollout_id: str) -> Rollout:
        rollout = self.store.get(rollout_id)
        if rollout is None:
            raise RolloutNotFound(f"no rollout {rollout_id!r}")
        return rollout

    def abort(self, rollout_id: str, reason: str) -> Rollout:
        """Roll back now (an operator's call), running or paused."""
        rollout = self.get(rollout_id)
        if rollout.state not in (RUNNING, PAUSED):
            raise RolloutConflict(
                f"rollout {rollout_id} is {rollout.state}, neither running nor paused"
            )
        self._roll_back(rollout, reason)
        return self.get(rollout_id)

    def pause(self, rollout_id: str, reason: str) -> Rollout:
        """Hold a running rollout where it is: the devices keep what they have."""
        self._switch(rollout_id, RUNNING, Change(state=PAUSED, reason=reason))
        logger.info("rollout %s paused: %s", rollout_id, reason)
        return self.get(rollout_id)

    def resume(self, rollout_id: str) -> Rollout:
        """Let a paused rollout run again; its stage's minimum time starts over."""
        change = Change(state=RUNNING, reason="", stage_started_at=time.time())
        self._switch(rollout_id, PAUSED, change)
        logger.info("rollout %s resumed", rollout_id)
        return self.get(rollout_id)

    def _switch(self, rollout_id: str, expected: RolloutState, change: Change) -> None:
        rollout = self.get(rollout_id)
        if rollout.state != expected:
            raise RolloutConflict(f"rollout {rollout_id} is {rollout.state}, not {expected}")
        if not self.store.transition(rollout, expected, change, time.time()):
            raise RolloutConflict(f"rollout {rollout_id} changed meanwhile; try again")

    # -- the loop -------------------------------------------------------------------------------
    def evaluate(self, rollout_id: str) -> None:
        """Read the rollout and what its devices and the fleet reported, decide, act."""
        rollout = self.get(rollout_id)
        if rollout.state == RolloutState.ROLLING_BACK:
            self._settle_rollback(rollout, self.store.acks(rollout))
            return
        if rollout.state != RUNNING:
            return  # paused (or finished) since it was listed
        acks = self.store.acks(rollout)
        self._resend(rollout, rollout.id, rollout.sha256, acks.model)
        snapshot = view(rollout)
        now = time.time()
        comparison = self.store.measure(rollout, snapshot.criteria.baseline_lookback_s, now)
        evaluation = Evaluation(acks, comparison)
        self._apply(rollout, decide(snapshot, evaluation, now), evaluation)

    def _apply(self, rollout: Rollout, decision: Decision, evaluation: Evaluation) -> None:
        comparison = evaluation.comparison
        match decision:
            case Leave():
                pass
            case Wait(reason):
                self.store.transition(
                    rollout, RUNNING, Change(reason=reason, evaluation=comparison), time.time()
                )
            case RollBack(reason):
                self._roll_back(rollout, reason, evaluation)
            case Complete():
                change = Change(state=RolloutState.COMPLETED, reason="", evaluation=comparison)
                if self.store.transition(rollout, RUNNING, change, time.time()):
                    logger.info("rollout %s completed", rollout.id)
            case Widen(stage, offered):
                # The next stage and the devices it offers to are one conditional update: a
                # replica that rolls back at the same moment either sees both or neither, so
                # every device offered the model is also offered the rollback.
                now = time.time()
                change = Change(
                    stage=stage, offered=offered, stage_started_at=now, evaluation=comparison
                )
                if self.store.transition(rollout, RUNNING, change, now):
                    self._offer(self.get(rollout.id), already=rollout.offered)

    def _settle_rollback(self, rollout: Rollout, acks: Acks) -> None:
        if rollback_settled(view(rollout), acks):
            change = Change(state=RolloutState.ROLLED_BACK)
            self.store.transition(rollout, RolloutState.ROLLING_BACK, change, time.time())
        else:
            self._resend(rollout, rollback_id(rollout.id), rollout.baseline_sha256, acks.rollback)

    def _roll_back(
        self, rollout: Rollout, reason: str, evaluation: Evaluation | None = None
    ) -> None:
        change = Change(
            state=RolloutState.ROLLING_BACK,
            reason=reason,
            evaluation=evaluation.comparison if evaluation is not None else None,
        )
        if not self.store.transition(rollout, RolloutState(rollout.state), change, time.time()):
            return  # another controller did it
        logger.warning("rollout %s: rolling back: %s", rollout.id, reason)
        self.counts["rollbacks"] += 1
        manifest = self._manifest(rollout.baseline_sha256)
        self._send(rollout, rollout.offered, manifest, rollback_id(rollout.id), rollback=True)

    # -- offers ---------------------------------------------------------------------------------
    def _offer(self, rollout: Rollout, already: list[str]) -> None:
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
        self, rollout: Rollout, offer_id: str, sha256: str, answered: Mapping[str, str]
    ) -> None:
        """Offer ``offer_id`` again to the devices that have not answered it for ``resend_s``
        (counted from when this controller first saw them waiting)."""
        now = time.time()
        due = []
        for device in rollout.offered:
            key = (rollout.id, offer_id, device)
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
            rollback = offer_id == rollback_id(rollout.id)
            self._send(rollout, due, self._manifest(sha256), offer_id, rollback=rollback)

    def _manifest(self, sha256: str) -> ModelManifest:
        row = self.store.model_by_sha(sha256)
        if row is None:
            raise RolloutConflict(f"model {sha256[:12]} left the registry")
        return manifest_of(row)

    def _send(
        self,
        rollout: Rollout,
        devices: list[str],
        manifest: ModelManifest,
        offer_id: str,
        rollback: bool = False,
    ) -> None:
        """Publish the offer ``offer_id`` of ``manifest`` to each of ``devices``, each signed
        with a new sequence and expiry (:mod:`edge_agent.offers` says why)."""
        if not devices:
            return
        key, ttl = signing_key(self.settings), self.settings.rollouts.offer_ttl_s
        infos = []
        for device in devices:
            signed = sign_offer(manifest, key, self._sequence.next(), ttl, rollback=rollback)
            offer = ModelOfferMessage(rollout_id=offer_id, manifest=signed)
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
