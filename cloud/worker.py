"""Re-inference workers: the cloud model's second opinion on escalated frames.

``edgecascade cloud worker`` processes consume escalations through an MQTT 5 shared subscription
(``$share/<group>/<prefix>/v1/+/+/escalation``), so N workers split the stream: the broker hands
each message to one member of the group. For a group of escalations a worker

1. decodes each frame (one that is not the image its header says is rejected: counted, logged,
   acknowledged, never retried forever);
2. runs the cloud model on it;
3. stores the verdicts in one transaction, keyed by escalation id (a stored one is kept);
4. publishes the stored verdicts to the devices (``verdict``; the site gateway routes them down)
   and waits for the broker's PUBACKs;
5. only then acknowledges the escalations.

A worker killed between any two steps gets its unacknowledged escalations again (persistent
session, stable client id); step 3 then finds the stored verdict and step 4 sends it again with
the same message id, which gateways and devices de-duplicate. Nothing is handled twice in effect.
The ingest stores the same escalations (frame and row) through its own share group; the two
never wait for each other.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from sqlalchemy import Engine, RowMapping, select
from sqlalchemy.exc import SQLAlchemyError

from cloud.db.models import Verdict
from cloud.db.upsert import dialect_insert
from cloud.settings import WorkerSection
from shared.codec import decode
from shared.config import MqttSettings
from shared.errors import ContractError
from shared.ids import new_message_id
from shared.messages import EscalationHeader, ModelRef, Prediction, VerdictMessage
from shared.mqtt import MqttLink, Outgoing, Received
from shared.runtime.runtime import ModelRuntime
from shared.topics import Kind, Topic, shared_filter, topic, topic_filter

logger = logging.getLogger(__name__)

RETRY_MIN_S = 0.2
RETRY_MAX_S = 5.0
CONFIRM_TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True)
class _Job:
    received: Received
    topic: Topic
    header: EscalationHeader
    image: np.ndarray[Any, Any]
    connection: int


class ReinferenceWorker:
    """One worker of the share group: :meth:`start`, :meth:`stop`, :attr:`counts`."""

    def __init__(
        self,
        engine: Engine,
        runtime: ModelRuntime,
        *,
        mqtt: MqttSettings,
        options: WorkerSection,
    ) -> None:
        self.engine = engine
        self.runtime = runtime
        self.options = options
        self.worker_id = options.worker_id
        self.counts: Counter[str] = Counter()
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
        self._jobs: queue.Queue[_Job] = queue.Queue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{self.worker_id}", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self._link.subscribe(self.filter, qos=1)
        self._thread.start()
        self._link.start()
        logger.info(
            "worker %s: %s %s on %s",
            self.worker_id,
            self._model.name,
            self._model.version,
            self.filter,
        )

    def wait_connected(self, timeout: float | None = None) -> bool:
        return self._link.wait_connected(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the jobs taken in (stored, published, acknowledged), then disconnect."""
        self._stopping.set()
        self._thread.join(timeout)
        self._link.stop()

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
            self.counts["rejected"] += 1
            logger.warning(
                "worker %s: rejected escalation on %s: %s", self.worker_id, msg.topic, exc
            )
            self._link.ack(msg)
            return
        self._jobs.put(_Job(msg, parsed, header, image, self._link.connects))

    # -- worker thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                jobs = [self._jobs.get(timeout=0.2)]
            except queue.Empty:
                if self._stopping.is_set():
                    return
                continue
            while True:  # whatever else is already here: one transaction for all
                try:
                    jobs.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            try:
                self._handle(jobs)
            except Exception:  # a bug must not silently stop the worker; these come again
                self.counts["errors"] += 1
                logger.exception(
                    "worker %s: handling %d escalations failed", self.worker_id, len(jobs)
                )

    def _handle(self, taken: list[_Job]) -> None:
        jobs, rows = [], []
        for job in taken:
            try:
                rows.append(self._infer(job))
                jobs.append(job)
            except Exception:  # a frame the model cannot take: never kill the worker on it
                self.counts["rejected"] += 1
                logger.exception(
                    "worker %s: the model failed on frame %r of %s",
                    self.worker_id,
                    job.header.frame_id,
                    job.received.topic,
                )
                self._link.ack(job.received)
        if not jobs:
            return
        delay = RETRY_MIN_S
        while True:
            try:
                stored = self._store(rows)
                break
            except SQLAlchemyError as exc:
                if self._stopping.is_set():
                    logger.warning(
                        "worker %s: stopping with %d unstored verdicts (redelivered later): %s",
                        self.worker_id,
                        len(rows),
                        exc,
                    )
                    return
                logger.warning(
                    "worker %s: storing verdicts failed, retry in %.1fs: %s",
                    self.worker_id,
                    delay,
                    exc,
                )
                self._stopping.wait(delay)
                delay = min(2 * delay, RETRY_MAX_S)
        infos = []
        for job in jobs:
            verdict = stored[job.header.msg_id]
            wire = topic(job.topic.site, job.topic.device, Kind.VERDICT, prefix=self._prefix)
            infos.append(self._link.publish(Outgoing(wire, verdict.model_dump_json().encode())))
        if not all(self._confirmed(info) for info in infos):
            logger.warning(
                "worker %s: the link dropped before the verdicts were confirmed; the "
                "escalations come again",
                self.worker_id,
            )
            return
        connection = self._link.connects
        for job in jobs:
            if job.connection == connection:  # an old packet id may mean another message now
                self._link.ack(job.received)
        self.counts["handled"] += len(jobs)

    def _confirmed(self, info: Any) -> bool:
        """Wait for a PUBACK as long as the connection that carries it lasts (a busy broker is
        slow, not lost); False once it dropped: the escalations are then delivered again."""
        while not self._link.confirm(info, CONFIRM_TIMEOUT_S):
            if not self._link.connected or info.rc != 0 or self._stopping.is_set():
                return False
        return True

    def _infer(self, job: _Job) -> dict[str, Any]:
        start = time.perf_counter()
        result = self.runtime.classify(job.image)
        top = result.top(self.options.top_k)
        inference_ms = (time.perf_counter() - start) * 1000
        header = job.header
        edge = header.top[0]
        return {
            "escalation_id": header.msg_id,
            "msg_id": new_message_id(),
            "result_id": header.result_id,
            "site_id": job.topic.site,
            "device_id": job.topic.device,
            "created_at": time.time(),
            "worker_id": self.worker_id,
            "model_name": self._model.name,
            "model_version": self._model.version,
            "model_sha256": self._model.sha256,
            "label": top[0][1],
            "label_index": top[0][0],
            "score": top[0][2],
            "top": [{"index": i, "label": label, "score": score} for i, label, score in top],
            "edge_model_name": header.model.name,
            "edge_model_version": header.model.version,
            "edge_label": edge.label,
            "edge_score": edge.score,
            "agrees": top[0][1] == edge.label,
            "inference_ms": inference_ms,
        }

    def _store(self, rows: list[dict[str, Any]]) -> dict[str, VerdictMessage]:
        """Insert the new verdicts; return the stored verdict of every escalation in ``rows``."""
        ids = [row["escalation_id"] for row in rows]
        with self.engine.begin() as conn:
            insert = dialect_insert(conn, Verdict).on_conflict_do_nothing(
                index_elements=[Verdict.escalation_id]
            )
            new = conn.execute(
                insert.returning(Verdict.escalation_id),
                sorted(rows, key=lambda row: str(row["escalation_id"])),
            ).all()
            table = Verdict.__table__
            stored = conn.execute(select(table).where(table.c.escalation_id.in_(ids))).mappings()
            verdicts = {row["escalation_id"]: verdict_message(row) for row in stored}
        self.counts["verdicts.new"] += len(new)
        self.counts["verdicts.again"] += len(rows) - len(new)
        return verdicts


def verdict_message(row: RowMapping) -> VerdictMessage:
    """The verdict as it is sent, rebuilt from its stored row (the same message every time)."""
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
    )
