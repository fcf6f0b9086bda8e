"""Escalations stored without a verdict are sent to the workers again.

The broker hands an escalation to the workers' share group only if the group exists when the
escalation arrives: before the first worker ever subscribed (a fresh deployment), or after
every worker's session expired, the ingest stores the frame but no worker sees it. A worker
that refuses a frame it cannot decode acknowledges it too. So every ``resubmit.interval_s`` the
cloud process looks for escalations stored more than ``resubmit.after_s`` ago with no verdict,
rebuilds each one from its row and its stored frame, and publishes it again on its own topic
with its own message id. Workers store one verdict per escalation id and the ingest keeps the
first copy, so a resubmitted escalation that was only slow changes nothing; each one is sent
again at most every ``after_s``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from edgecascade.cloud.blobs import BlobNotFound, BlobStore
from edgecascade.cloud.db.models import Escalation, Result, Verdict
from edgecascade.cloud.periodic import PeriodicPublisher
from edgecascade.cloud.settings import CloudSettings
from edgecascade.shared.codec import encode
from edgecascade.shared.fields import DetectedObject
from edgecascade.shared.messages import EscalationHeader, ModelRef, Prediction
from edgecascade.shared.mqtt import Outgoing
from edgecascade.shared.topics import Kind, topic

logger = logging.getLogger(__name__)

CONFIRM_TIMEOUT_S = 10.0
MAX_ATTEMPTS = 5  # then the frame is taken to be one no worker can judge, and left alone


class EscalationResubmitter(PeriodicPublisher):
    """Finds escalations without a verdict and publishes them to the workers again."""

    def __init__(self, engine: Engine, blobs: BlobStore, settings: CloudSettings) -> None:
        super().__init__("resubmit", settings, settings.resubmit.interval_s)
        self.engine = engine
        self.blobs = blobs
        self.options = settings.resubmit
        self._sent_at: dict[str, float] = {}
        self._attempts: Counter[str] = Counter()
        self.abandoned: set[str] = set()

    def tick(self) -> None:
        self.sweep()

    def sweep(self) -> int:
        """One pass; returns how many escalations were published again."""
        now = time.time()
        with Session(self.engine) as session:
            rows = session.execute(
                select(Escalation, Result.top)
                .outerjoin(Verdict, Verdict.escalation_id == Escalation.msg_id)
                .outerjoin(Result, Result.msg_id == Escalation.result_id)
                .where(
                    Verdict.escalation_id.is_(None),
                    Escalation.received_at < now - self.options.after_s,
                    Escalation.msg_id.not_in(self.abandoned),
                )
                .order_by(Escalation.received_at)
                .limit(self.options.max_per_pass)
            ).all()
        waiting = {row[0].msg_id for row in rows}
        self._sent_at = {k: v for k, v in self._sent_at.items() if k in waiting}
        self._attempts = Counter({k: n for k, n in self._attempts.items() if k in waiting})
        infos = []
        for escalation, top_k in rows:
            key = escalation.msg_id
            if now - self._sent_at.get(key, 0.0) < self.options.after_s:
                continue
            if self._attempts[key] >= MAX_ATTEMPTS:
                self.abandoned.add(key)
                self.counts["abandoned"] += 1
                logger.error(
                    "escalation %s of %s/%s: no verdict after %d resubmissions; left alone",
                    key,
                    escalation.site_id,
                    escalation.device_id,
                    MAX_ATTEMPTS,
                )
                continue
            message = self._rebuild(escalation, top_k)
            if message is None:
                self.abandoned.add(key)
                continue
            self._sent_at[key] = now
            self._attempts[key] += 1
            infos.append(self._link.publish(message))
        if infos:
            confirmed = sum(self._link.confirm(info, CONFIRM_TIMEOUT_S) for info in infos)
            self.counts["resubmitted"] += confirmed
            logger.warning(
                "%d escalation(s) without a verdict after %.0f s sent to the workers again",
                confirmed,
                self.options.after_s,
            )
        return len(infos)

    def _rebuild(self, esc: Escalation, top_k: list[Any] | None) -> Outgoing | None:
        """The escalation as its device sent it, from its row, its result's top-k and its frame
        (a detection escalation's boxes, as sent, from its row)."""
        try:
            frame = self.blobs.get(esc.blob_path)
        except (BlobNotFound, OSError) as exc:
            self.counts["missing_frames"] += 1
            logger.error(
                "escalation %s: its frame %s cannot be read (%r); not resubmitted",
                esc.msg_id,
                esc.blob_path,
                exc,
            )
            return None
        top = [Prediction.model_validate(p) for p in top_k] if top_k else []
        detection = esc.task == "detection"
        if not detection and (not top or top[0].label != esc.edge_label):
            top = [Prediction(index=0, label=esc.edge_label, score=esc.edge_score)]
        header = EscalationHeader(
            task="detection" if detection else "classification",
            detections=[DetectedObject.model_validate(d) for d in esc.detections or []],
            msg_id=esc.msg_id,
            result_id=esc.result_id,
            frame_id=esc.frame_id,
            captured_at=esc.captured_at,
            model=ModelRef(name=esc.model_name, version=esc.model_version),
            top=top,
            reason=esc.reason,
            content_type=esc.content_type,
            width=esc.width,
            height=esc.height,
            roi=tuple(esc.roi) if esc.roi else None,
            ground_truth=esc.ground_truth,
            audit=esc.audit,
        )
        wire = topic(esc.site_id, esc.device_id, Kind.ESCALATION, prefix=self.settings.mqtt.prefix)
        return Outgoing(wire, encode(header, frame))
