"""The worker on detection escalations, on a real broker and database (SQLite and PostgreSQL).

A 1280x720 frame with a face about 32 pixels wide (too small for the full-range detector on the
whole frame, found on its tiles) is escalated by an edge that found nothing: the verdict carries
the cloud's box and an agreement of recall 0. An edge box on that face agrees. Replays store and
send nothing new; a frame that does not decode and a worker without a detector reject, and the
stream goes on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from edgecascade.brokers import MosquittoBroker
from edgecascade.cloud.db.models import DetectedBox, Escalation, Verdict
from edgecascade.cloud.detection import CloudDetector
from edgecascade.cloud.services import Services, open_services
from edgecascade.cloud.settings import CloudSettings, DetectionSection, ResubmitSection
from edgecascade.cloud.worker import ReinferenceWorker
from edgecascade.shared.codec import decode, encode
from edgecascade.shared.fields import DetectedObject
from edgecascade.shared.ids import new_message_id
from edgecascade.shared.messages import EscalationHeader, ModelRef, VerdictMessage
from edgecascade.shared.mqtt import Outgoing
from edgecascade.shared.runtime.runtime import ModelRuntime
from edgecascade.shared.topics import Kind, Topic, topic, topic_filter
from tests.utils.faces import frame_with_small_face, jpeg
from tests.utils.mqtt import Collector, publish_all, wait_until
from tests.utils.paths import CLOUD_MODEL, FACE_FULL

EDGE = ModelRef(name="face_short_range", version="1.0.0")


def detection_escalation(
    edge_boxes: list[DetectedObject], body: bytes | None = None, device: str = "cam1"
) -> tuple[Outgoing, EscalationHeader]:
    frame, _ = frame_with_small_face()
    header = EscalationHeader(
        task="detection",
        result_id=new_message_id(),
        frame_id=f"f-{len(edge_boxes)}",
        captured_at=1_700_000_000.0,
        model=EDGE,
        top=[],
        detections=edge_boxes,
        reason="count_changed",
        width=1280,
        height=720,
    )
    payload = encode(header, body if body is not None else jpeg(frame))
    return Outgoing(topic("site1", device, Kind.ESCALATION), payload), header


def start_worker(
    services: Services, broker: MosquittoBroker, **detection: Any
) -> ReinferenceWorker:
    options = services.settings.worker.model_copy(
        update={"worker_id": "det", "model": CLOUD_MODEL, "prefetch": 4}
    )
    detector = None
    if detection.get("model") is not None:
        detector = CloudDetector.load(DetectionSection(**detection), num_threads=1)
    worker = ReinferenceWorker(
        services.engine,
        ModelRuntime.load(CLOUD_MODEL),
        mqtt=broker.settings,
        options=options,
        detector=detector,
    )
    worker.start()
    assert worker.wait_connected(10)
    return worker


@pytest.fixture
def worker(services: Services, broker: MosquittoBroker) -> Iterator[ReinferenceWorker]:
    started = start_worker(services, broker, model=FACE_FULL)
    yield started
    started.stop()


def verdicts(collector: Collector) -> list[VerdictMessage]:
    out = []
    for m in collector.messages:
        message = decode(Topic.parse(m.topic), m.payload).message
        assert isinstance(message, VerdictMessage)
        out.append(message)
    return out


def count(services: Services, entity: type[Verdict] | type[DetectedBox] | type[Escalation]) -> int:
    with services.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(entity)) or 0)


def test_the_cloud_finds_the_small_face_the_edge_missed_and_agreement_scores_it(
    services: Services, broker: MosquittoBroker, worker: ReinferenceWorker
) -> None:
    _, head = frame_with_small_face()
    missed_wire, missed = detection_escalation([])
    with Collector(broker.settings, topic_filter(Kind.VERDICT), client_id="devices") as devices:
        publish_all(broker.settings, [missed_wire])
        assert wait_until(lambda: len(verdicts(devices)) == 1, timeout=60)
        verdict = verdicts(devices)[0]
        assert verdict.task == "detection" and verdict.escalation_id == missed.msg_id
        assert verdict.model.name == "face-full-range"
        assert len(verdict.detections) == 1
        face = verdict.detections[0]
        x0, y0, x1, y1 = face.box
        assert head[0] <= x0 < x1 <= head[2] and head[1] <= y0 < y1 <= head[3]
        assert [(p.label, p.score) for p in verdict.top] == [("face", face.score)]
        agreement = verdict.agreement
        assert agreement is not None
        assert (agreement.matched, agreement.edge_only, agreement.cloud_only) == (0, 0, 1)
        assert (agreement.precision, agreement.recall) == (1.0, 0.0)
        assert verdict.agrees is False

        # The edge's box on the same face: matched both ways.
        seen = DetectedObject(label="face", score=0.7, box=face.box)
        found_wire, found = detection_escalation([seen], device="cam2")
        publish_all(broker.settings, [found_wire], client_id="second")
        assert wait_until(lambda: len(verdicts(devices)) == 2, timeout=60)
        second = verdicts(devices)[1]
        assert second.escalation_id == found.msg_id and second.agrees is True
        assert second.agreement is not None and second.agreement.mean_iou == pytest.approx(1.0)

        # Stored: a verdict row each and the cloud's box as a detections row per verdict.
        with services.sessions() as session:
            rows = {v.escalation_id: v for v in session.scalars(select(Verdict))}
            boxes = session.scalars(select(DetectedBox).order_by(DetectedBox.device_id)).all()
        assert rows[missed.msg_id].task == "detection"
        assert rows[missed.msg_id].edge_recall == 0.0 and rows[found.msg_id].edge_recall == 1.0
        assert rows[missed.msg_id].label == "face" and rows[missed.msg_id].edge_label == ""
        assert [(b.source, b.escalation_id, b.device_id) for b in boxes] == [
            ("cloud", missed.msg_id, "cam1"),
            ("cloud", found.msg_id, "cam2"),
        ]
        assert (boxes[0].x0, boxes[0].y0, boxes[0].x1, boxes[0].y1) == face.box
        assert (boxes[0].frame_width, boxes[0].frame_height) == (1280, 720)

        # A replay: the stored verdict sent again, same id and boxes; nothing stored twice.
        publish_all(broker.settings, [missed_wire], client_id="replay")
        assert wait_until(lambda: len(verdicts(devices)) == 3, timeout=60)
        assert verdicts(devices)[2] == verdict
    assert worker.counts["verdicts.again"] == 1
    assert (count(services, Verdict), count(services, DetectedBox)) == (2, 2)


def test_a_detection_frame_that_does_not_decode_is_rejected_and_the_stream_goes_on(
    services: Services, broker: MosquittoBroker, worker: ReinferenceWorker
) -> None:
    bad_wire, _ = detection_escalation([], body=b"\xff\xd8\xff" + b"\x00garbage" * 50)
    good_wire, good = detection_escalation([], device="cam2")
    with Collector(broker.settings, topic_filter(Kind.VERDICT), client_id="devices") as devices:
        publish_all(broker.settings, [bad_wire, good_wire])
        assert wait_until(lambda: len(verdicts(devices)) == 1, timeout=60)
        assert verdicts(devices)[0].escalation_id == good.msg_id
    assert wait_until(lambda: worker.counts["rejected"] == 1)


def test_a_worker_without_a_detector_rejects_detection_escalations(
    services: Services, broker: MosquittoBroker
) -> None:
    worker = start_worker(services, broker)
    try:
        wire, _ = detection_escalation([])
        publish_all(broker.settings, [wire])
        assert wait_until(lambda: worker.counts["rejected"] == 1, timeout=30)
    finally:
        worker.stop()
    assert count(services, Verdict) == 0


def test_a_detection_escalation_no_worker_saw_is_sent_again_with_its_boxes(
    cloud_settings: CloudSettings, broker: MosquittoBroker
) -> None:
    """Stored by the ingest before any worker subscribed, the escalation is rebuilt from its row
    (task and the edge's boxes included) and judged once a worker is there."""
    settings = cloud_settings.model_copy(
        update={"mqtt": broker.settings, "resubmit": ResubmitSection(after_s=1.0, interval_s=0.3)}
    )
    services = open_services(settings)
    worker = None
    edge = DetectedObject(label="face", score=0.6, box=(10.0, 10.0, 40.0, 40.0))  # not a face
    wire, header = detection_escalation([edge])
    try:
        assert services.ingestor is not None and services.ingestor.wait_connected(10)
        publish_all(broker.settings, [wire])
        assert wait_until(lambda: count(services, Escalation) == 1, timeout=15)
        worker = start_worker(services, broker, model=FACE_FULL)
        assert wait_until(lambda: count(services, Verdict) == 1, timeout=60)
        with services.sessions() as session:
            verdict = session.get(Verdict, header.msg_id)
            boxes = session.scalars(select(DetectedBox).order_by(DetectedBox.source)).all()
    finally:
        if worker is not None:
            worker.stop()
        services.close()
    assert verdict is not None and verdict.task == "detection"
    assert verdict.agreement is not None
    assert (verdict.agreement["edge_only"], verdict.agreement["cloud_only"]) == (1, 1)
    assert (verdict.edge_precision, verdict.edge_recall) == (0.0, 0.0)
    # The edge's box from the result the ingest never saw is not stored; the cloud's is.
    assert [(b.source, b.label) for b in boxes] == [("cloud", "face")]
