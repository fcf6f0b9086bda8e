"""Re-inference workers: the cloud model's second opinion on escalated frames.

``edgecascade cloud worker`` processes consume escalations through an MQTT 5 shared subscription
(``$share/<group>/<prefix>/v1/+/+/escalation``), so N workers split the stream: the broker hands
each message to one member of the group. For a group of escalations a worker

1. decodes each frame (one that is not the image its header says is rejected: counted, logged,
   acknowledged, never retried forever);
2. runs the cloud model on it: the classifier (``worker.model``), or for an escalation whose
   task is detection the cloud detector (``worker.detection``) on the whole frame and its tiles,
   the edge's boxes scored against its own by IoU (:mod:`cloud.detection`);
3. stores the verdicts in one transaction, keyed by escalation id (a stored one is kept), each
   with the cloud model's whole output distribution (``probs``: the soft targets a fine-tuned edge
   model learns from) and the escalation's ``audit`` flag;
4. publishes the stored verdicts to the devices (``verdict``; the site gateway routes them down)
   and waits for the broker's PUBACKs;
5. only then acknowledges the escalations.

The verdicts go out on a connection of their own (``<worker_id>-verdicts``). Their PUBACKs are
read by that connection's network thread, never by the one that takes escalations in: that one
waits while the worker's queue is full, and Mosquitto 2.0.11 (Debian 12's) sends more than the
receive maximum once a client acknowledges, so on one connection a burst of escalations left the
worker waiting forever for PUBACKs its own network thread could not read. A verdict connection
that drops is waited for and the verdicts are sent on it again (same message ids).

Steps 2 to 5 run on the thread of a :class:`shared.consumer.CommitConsumer`, which retries a
failed transaction with backoff and acknowledges in arrival order on the delivering connection.
A worker killed between any two steps gets its unacknowledged escalations again (persistent
session, stable client id); step 3 then finds the stored verdict and step 4 sends it again with
the same message id, which gateways and devices de-duplicate. Nothing is handled twice in effect.
The ingest stores the same escalations (frame and row) through its own share group; the two
never wait for each other.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np
from sqlalchemy import Connection, Engine, RowMapping, select
from sqlalchemy.exc import SQLAlchemyError

from edgecascade.cloud.db.models import DetectedBox, Verdict
from edgecascade.cloud.db.upsert import dialect_insert, insert_boxes
from edgecascade.cloud.detection import CloudDetector, cloud_box_rows, verdict_fields
from edgecascade.cloud.settings import WorkerSection
from edgecascade.shared.codec import decode
from edgecascade.shared.config import MqttSettings
from edgecascade.shared.consumer import Ack, CommitConsumer
from edgecascade.shared.errors import ContractError, TransientCommitError
from edgecascade.shared.fields import DetectedObject, DetectionAgreement
from edgecascade.shared.ids import new_message_id
from edgecascade.shared.messages import EscalationHeader, ModelRef, Prediction, VerdictMessage
from edgecascade.shared.mqtt import MqttLink, Outgoing, Received
from edgecascade.shared.runtime.runtime import ModelRuntime
from edgecascade.shared.topics import Kind, Topic, shared_filter, topic, topic_filter

logger = logging.getLogger(__name__)

CONFIRM_TIMEOUT_S = 1.0
PROBS_DECIMALS = 6  # of the stored output distribution: soft targets, not an exact replay
# A classification verdict's detection columns: every row of one executemany has every column.
CLASSIFICATION_FIELDS = {
    "task": "classification",
    "agreement": None,
    "edge_precision": None,
    "edge_recall": None,
}


@dataclass(frozen=True, slots=True)
class _Job:
    wire_topic: str
    topic: Topic
    header: EscalationHeader
    image: np.ndarray[Any, Any]


@dataclass(frozen=True, slots=True)
class _Judged:
    job: _Job
    row: dict[str, Any]  # the verdict row to store
    boxes: list[dict[str, Any]] = field(default_factory=list)  # the cloud's detections rows


class ReinferenceWorker:
    """One worker of the share group: :meth:`start`, :meth:`stop`, :attr:`counts`."""

    def __init__(
        self,
        engine: Engine,
        runtime: ModelRuntime,
        *,
        mqtt: MqttSettings,
        options: WorkerSection,
        detector: CloudDetector | None = None,
    ) -> None:
        self.engine = engine
        self.runtime = runtime
        self.detector = detector
        self.options = options
        self.worker_id = options.worker_id
        self._counts: Counter[str] = Counter()
        self._model = ModelRef(
            name=runtime.card.name, version=runtime.card.version, sha256=runtime.sha256
        )
        self._link = MqttLink(
            mqtt,
            options.worker_id,
            on_message=self._on_message,
            manual_ack=True,
            receive_maximum=options.prefetch,
        )
        self.filter = shared_filter(
            options.share_group, topic_filter(Kind.ESCALATION, prefix=mqtt.prefix)
        )
        self._prefix = mqtt.prefix
        self._verdicts = MqttLink(mqtt, f"{options.worker_id}-verdicts", persistent=False)
        # Whatever is already here is judged and stored in one transaction. The broker should send
        # at most ``prefetch`` unacknowledged (Mosquitto 2.0.11 sends more); when the queue is
        # full the network thread waits and the broker with it, never the verdicts' PUBACKs.
        queued = 16 * options.prefetch
        self._consumer: CommitConsumer[_Job, _Judged] = CommitConsumer(
            self.worker_id,
            self._link,
            self._commit,
            self._judge,
            max_queued=queued,
            max_batch=queued,
        )

    @property
    def counts(self) -> Counter[str]:
        """Counted since start: handled, rejected, verdicts.new/.again, errors."""
        counts = Counter(self._counts)
        if self._consumer.errors:
            counts["errors"] = self._consumer.errors
        return counts

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self._link.subscribe(self.filter, qos=1)
        self._verdicts.start()
        self._consumer.start()
        self._link.start()
        logger.info(
            "worker %s: %s %s on %s",
            self.worker_id,
            self._model.name,
            self._model.version,
            self.filter,
        )
        if self.detector is not None:
            model = self.detector.model
            logger.info("worker %s: detector %s %s", self.worker_id, model.name, model.version)

    def wait_connected(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._link.wait_connected(timeout):
            return False
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self._verdicts.wait_connected(left)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the jobs taken in (stored, published, acknowledged), then disconnect."""
        self._consumer.stop(timeout)
        self._link.stop()
        self._verdicts.stop()

    # -- paho network thread ---------------------------------------------------------------------
    def _on_message(self, msg: Received) -> None:
        try:
            parsed = Topic.parse(msg.topic)
            decoded = decode(parsed, msg.payload)  # header contract + the image's magic bytes
            header = decoded.message
            assert isinstance(header, EscalationHeader)
            image = cv2.imdecode(np.frombuffer(decoded.body, np.uint8), cv2.IMREAD_UNCHANGED)
            if image is None:
                raise ContractError(
                    f"{header.content_type} frame of {header.frame_id!r} does not decode"
                )
        except ContractError as exc:
            self._counts["rejected"] += 1
            logger.warning(
                "worker %s: rejected escalation on %s: %s", self.worker_id, msg.topic, exc
            )
            self._consumer.submit(msg)  # acknowledged in its turn, never judged
            return
        self._consumer.submit(msg, _Job(msg.topic, parsed, header, image))

    # -- worker thread ---------------------------------------------------------------------------
    def _judge(self, job: _Job) -> _Judged | None:
        """The cloud model's verdict row; None (rejected, acknowledged) if the model fails."""
        if job.header.task == "detection" and self.detector is None:
            self._counts["rejected"] += 1
            logger.warning(
                "worker %s: detection escalation of frame %r on %s, but no detector is "
                "configured (worker.detection.model)",
                self.worker_id,
                job.header.frame_id,
                job.wire_topic,
            )
            return None
        try:
            if job.header.task == "detection":
                return self._detect(job)
            return _Judged(job, self._infer(job))
        except Exception:  # a frame the model cannot take: never kill the worker on it
            self._counts["rejected"] += 1
            logger.exception(
                "worker %s: the model failed on frame %r of %s",
                self.worker_id,
                job.header.frame_id,
                job.wire_topic,
            )
            return None

    def _commit(self, judged: list[_Judged]) -> Ack:
        """Store the verdicts, send them, and have the escalations acknowledged once confirmed."""
        try:
            stored = self._store(judged)
        except SQLAlchemyError as exc:
            raise TransientCommitError(f"storing {len(judged)} verdicts failed: {exc}") from exc
        wires = []
        for job in (j.job for j in judged):
            verdict = stored[job.header.msg_id]
            wire = topic(job.topic.site, job.topic.device, Kind.VERDICT, prefix=self._prefix)
            wires.append(Outgoing(wire, verdict.model_dump_json().encode()))
        if not self._send(wires):
            logger.warning(
                "worker %s: stopped before the verdicts were confirmed; the escalations come again",
                self.worker_id,
            )
            return Ack.NONE
        self._counts["handled"] += len(judged)
        return Ack.ALL

    def _send(self, wires: list[Outgoing]) -> bool:
        """Publish the verdicts and wait for every PUBACK; after the verdict connection dropped,
        publish them again once it is back. False only when the worker stops first."""
        while True:
            infos = [self._verdicts.publish(wire) for wire in wires]
            if all(self._confirmed(info) for info in infos):
                return True
            if self._consumer.stopping:
                return False
            self._verdicts.wait_connected(CONFIRM_TIMEOUT_S)

    def _confirmed(self, info: Any) -> bool:
        """Wait for a PUBACK as long as the connection that carries it lasts (a busy broker is
        slow, not lost); False once it dropped."""
        while not self._verdicts.confirm(info, CONFIRM_TIMEOUT_S):
            if not self._verdicts.connected or info.rc != 0 or self._consumer.stopping:
                return False
        return True

    def _detect(self, job: _Job) -> _Judged:
        """The cloud detector's boxes on the frame, the edge's scored against them."""
        assert self.detector is not None
        header, detector = job.header, self.detector
        judgement = detector.judge(header, job.image)
        if judgement.dropped:
            self._counts["detections.dropped"] += judgement.dropped
        for fault, n in asdict(judgement.faults).items():  # NaN scores, degenerate boxes...
            if n:
                self._counts[f"detections.{fault}"] += n
        labels = detector.detector.card.labels
        row = {
            **self._verdict_row(job, detector.model, judgement.inference_ms),
            **verdict_fields(header, judgement, labels),
        }
        site, device = job.topic.site, job.topic.device
        boxes = cloud_box_rows(site, device, header, detector.model, judgement.detections)
        return _Judged(job, row, boxes)

    def _verdict_row(self, job: _Job, model: ModelRef, inference_ms: float) -> dict[str, Any]:
        """The columns every verdict row has, whatever its task."""
        header = job.header
        return {
            "escalation_id": header.msg_id,
            "msg_id": new_message_id(),
            "result_id": header.result_id,
            "site_id": job.topic.site,
            "device_id": job.topic.device,
            "created_at": time.time(),
            "worker_id": self.worker_id,
            "model_name": model.name,
            "model_version": model.version,
            "model_sha256": model.sha256,
            "edge_model_name": header.model.name,
            "edge_model_version": header.model.version,
            "inference_ms": inference_ms,
            "audit": header.audit,
        }

    def _infer(self, job: _Job) -> dict[str, Any]:
        start = time.perf_counter()
        result = self.runtime.classify(job.image)
        top = result.top(self.options.top_k)
        inference_ms = (time.perf_counter() - start) * 1000
        edge = job.header.top[0]
        return {
            **self._verdict_row(job, self._model, inference_ms),
            "label": top[0][1],
            "label_index": top[0][0],
            "score": top[0][2],
            "top": [{"index": i, "label": label, "score": score} for i, label, score in top],
            "edge_label": edge.label,
            "edge_score": edge.score,
            "agrees": top[0][1] == edge.label,
            "probs": [round(float(p), PROBS_DECIMALS) for p in result.probabilities],
            **CLASSIFICATION_FIELDS,
        }

    def _store(self, judged: list[_Judged]) -> dict[str, VerdictMessage]:
        """Insert the new verdicts (and the boxes of the new ones); return the stored verdict
        of every escalation judged."""
        rows = [j.row for j in judged]
        ids = [row["escalation_id"] for row in rows]
        with self.engine.begin() as conn:
            insert = dialect_insert(conn, Verdict).on_conflict_do_nothing(
                index_elements=[Verdict.escalation_id]
            )
            new = conn.execute(
                insert.returning(Verdict.escalation_id),
                sorted(rows, key=lambda row: str(row["escalation_id"])),
            ).all()
            fresh = {escalation_id for (escalation_id,) in new}
            # A verdict stored before keeps the boxes stored with it.
            insert_boxes(
                conn, [b for j in judged if j.row["escalation_id"] in fresh for b in j.boxes]
            )
            table = Verdict.__table__
            stored = conn.execute(select(table).where(table.c.escalation_id.in_(ids))).mappings()
            boxes = cloud_boxes(conn, ids)
            verdicts = {
                row["escalation_id"]: verdict_message(row, boxes.get(row["escalation_id"], []))
                for row in stored
            }
        self._counts["verdicts.new"] += len(new)
        self._counts["verdicts.again"] += len(rows) - len(new)
        return verdicts


def cloud_boxes(conn: Connection, escalation_ids: list[str]) -> dict[str, list[DetectedObject]]:
    """The cloud's stored boxes of these escalations' verdicts, best first."""
    table = DetectedBox.__table__
    c = table.c
    rows = conn.execute(
        select(table)
        .where(c.source == "cloud", c.escalation_id.in_(escalation_ids))
        .order_by(c.escalation_id, c.position)
    ).mappings()
    out: dict[str, list[DetectedObject]] = {}
    for row in rows:
        out.setdefault(row["escalation_id"], []).append(stored_box(row))
    return out


def stored_box(row: RowMapping) -> DetectedObject:
    """A ``detections`` row as the box it was."""
    return DetectedObject(
        label=row["label"],
        score=row["score"],
        box=(row["x0"], row["y0"], row["x1"], row["y1"]),
        zone=row["zone"],
    )


def verdict_message(row: RowMapping, boxes: list[DetectedObject] | None = None) -> VerdictMessage:
    """The verdict as it is sent, rebuilt from its stored row and (detection) its stored boxes:
    the same message every time."""
    detection = row["task"] == "detection"
    return VerdictMessage(
        msg_id=row["msg_id"],
        ts=row["created_at"],
        escalation_id=row["escalation_id"],
        result_id=row["result_id"],
        model=ModelRef(
            name=row["model_name"], version=row["model_version"], sha256=row["model_sha256"]
        ),
        top=[Prediction.model_validate(p) for p in row["top"]],
        agrees=row["agrees"],
        task="detection" if detection else "classification",
        detections=boxes or [],
        agreement=DetectionAgreement.model_validate(row["agreement"]) if detection else None,
    )
