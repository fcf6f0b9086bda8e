"""A detector's boxes made into results and escalations: original-frame pixels, NaN and
out-of-frame boxes, the per-label summary, escalation boxes rescaled; detection verdicts."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgecascade.edge_agent.decode import decode_jpeg
from edgecascade.edge_agent.detections import original_size, rescale, to_objects
from edgecascade.edge_agent.emit import ResultEmitter
from edgecascade.edge_agent.escalation import escalation_payload
from edgecascade.edge_agent.feed import Prepared
from edgecascade.edge_agent.settings import (
    AgentSettings,
    DetectionEscalationSettings,
    EscalationSettings,
)
from edgecascade.edge_agent.sources import Frame
from edgecascade.edge_agent.stats import AgentStats
from edgecascade.edge_agent.telemetry import StageTimer
from edgecascade.edge_agent.verdicts import VerdictBook
from edgecascade.shared.boxes import agreement, label_summary
from edgecascade.shared.codec import decode
from edgecascade.shared.fields import DetectedObject
from edgecascade.shared.messages import EscalationHeader, Prediction, VerdictMessage
from edgecascade.shared.outbox import Outbox
from edgecascade.shared.runtime.detect import Detection, DetectionResult
from edgecascade.shared.runtime.detect_faults import OutputFaults
from edgecascade.shared.runtime.detector import Detector
from edgecascade.shared.topics import Kind, Topic
from tests.utils.factories import make_result
from tests.utils.paths import FACE_SHORT, PHOTOS

FACE = DetectedObject(label="face", score=0.9, box=(178.0, 81.0, 272.0, 175.0))


def test_boxes_of_a_reduced_decode_come_back_in_original_pixels() -> None:
    found = [Detection("face", 0.9, (10.0, 20.0, 30.0, 40.0))]
    objects, invalid = to_objects(found, seen=(160, 90), original=(1280, 720))
    assert invalid == 0 and objects[0].box == (80.0, 160.0, 240.0, 320.0)


def test_nan_is_dropped_and_counted_and_outside_boxes_clipped() -> None:
    found = [
        Detection("face", math.nan, (1.0, 1.0, 2.0, 2.0)),
        Detection("face", 0.8, (math.nan, 1.0, 2.0, 2.0)),
        Detection("face", 0.7, (-50.0, 90.0, 700.0, -3.0)),  # outside and upside down
        Detection("face", 1.5, (math.inf, 0.0, 1.0, 1.0)),
    ]
    objects, invalid = to_objects(found, seen=(640, 480), original=(640, 480))
    assert invalid == 3
    assert [o.box for o in objects] == [(0.0, 0.0, 640.0, 90.0)]


def test_summary_gives_each_label_its_best_score_and_card_index() -> None:
    objects = [
        DetectedObject(label="cat", score=0.6, box=(0, 0, 1, 1)),
        DetectedObject(label="dog", score=0.8, box=(0, 0, 1, 1)),
        DetectedObject(label="cat", score=0.7, box=(0, 0, 1, 1)),
    ]
    assert label_summary(objects, ["person", "dog", "cat"]) == [
        Prediction(index=1, label="dog", score=0.8),
        Prediction(index=2, label="cat", score=0.7),
    ]
    assert label_summary([], ["face"]) == []


def test_original_size_reads_the_jpeg_header_of_a_reduced_decode() -> None:
    data = (PHOTOS / "astronaut.jpg").read_bytes()
    small = decode_jpeg(data, 4, gray=False)
    assert small is not None
    frame = Frame("a", small, 0.0, encoded=data)
    full = np.asarray(cv2.imread(str(PHOTOS / "astronaut.jpg")))
    assert original_size(frame) == (full.shape[1], full.shape[0])
    assert original_size(Frame("b", small, 0.0)) == (small.shape[1], small.shape[0])


def test_rescale_follows_a_downscaled_escalation() -> None:
    (moved,) = rescale([FACE], (512, 512), (256, 256))
    assert moved.box == (89.0, 40.5, 136.0, 87.5) and moved.label == "face"
    assert rescale([FACE], (512, 512), (512, 512)) == [FACE]


def test_a_detection_escalation_carries_the_whole_frame_and_the_edges_boxes() -> None:
    data = (PHOTOS / "astronaut.jpg").read_bytes()
    image = decode_jpeg(data, 2, gray=False)
    assert image is not None
    frame = Frame("astronaut.jpg", image, 1.0, encoded=data)
    width, height = original_size(frame)
    result = make_result(task="detection", top=[], detections=[FACE], frame_size=(width, height))
    # An ROI is for classification: a detection escalation ignores it; max_side still applies.
    settings = EscalationSettings(max_side=256, roi=(0, 0, 50, 50))
    header, payload = escalation_payload(frame, result, "score_band face", settings)
    parsed = decode(Topic("s", "d", Kind.ESCALATION), payload)
    assert isinstance(parsed.message, EscalationHeader) and parsed.message.task == "detection"
    assert header.roi is None and max(header.width, header.height) == 256
    sent = np.asarray(cv2.imdecode(np.frombuffer(parsed.body, np.uint8), cv2.IMREAD_COLOR))
    assert (sent.shape[1], sent.shape[0]) == (header.width, header.height)
    (box,) = header.detections
    sx, sy = header.width / width, header.height / height
    expected = (FACE.box[0] * sx, FACE.box[1] * sy, FACE.box[2] * sx, FACE.box[3] * sy)
    assert np.allclose(box.box, expected) and box.score == FACE.score


def detection_verdict(result_id: str, cloud: list[DetectedObject]) -> VerdictMessage:
    measured = agreement([FACE], cloud)
    return VerdictMessage(
        escalation_id=result_id,
        result_id=result_id,
        model=make_result().model,
        task="detection",
        top=[],
        detections=cloud,
        agrees=measured.precision == 1.0 and measured.recall == 1.0,
        agreement=measured,
    )


def test_detection_verdicts_are_counted_with_their_agreement_and_mismatches_ignored() -> None:
    book = VerdictBook()
    detection = make_result(task="detection", top=[], detections=[FACE], frame_size=(512, 512))
    classification = make_result(label="cat")
    book.remember(detection)
    book.remember(classification)
    other = DetectedObject(label="face", score=0.8, box=(400.0, 400.0, 450.0, 450.0))
    assert book.apply(detection_verdict(detection.msg_id, [FACE, other]))
    assert book.counts["verdicts.received"] == 1 and book.counts["verdicts.disagreed"] == 1
    assert book.counts["verdicts.cloud_only"] == 1 and book.counts["verdicts.edge_only"] == 0
    recorded = book.agreement(detection.msg_id)
    assert recorded is not None and recorded.matched == 1 and recorded.recall == 0.5
    # A detection verdict for a classification result, and the other way round: counted only.
    assert not book.apply(detection_verdict(classification.msg_id, [FACE]))
    cat = VerdictMessage(
        escalation_id=detection.msg_id,
        result_id=detection.msg_id,
        model=detection.model,
        top=[Prediction(index=0, label="cat", score=0.9)],
        agrees=False,
    )
    assert not book.apply(cat)
    assert book.counts["verdicts.mismatched"] == 2 and book.counts["verdicts.received"] == 1
    assert book.cloud_label(classification.msg_id) is None


def test_the_emit_stage_counts_what_the_detector_and_the_contract_dropped(tmp_path: Path) -> None:
    settings = AgentSettings(
        model=FACE_SHORT,
        data_dir=tmp_path,
        escalation=EscalationSettings(
            audit_fraction=0, detection=DetectionEscalationSettings(rules=[])
        ),
    )
    outbox = Outbox(tmp_path / "outbox.db")
    stats = AgentStats()
    emitter = ResultEmitter(
        settings, outbox, VerdictBook(), stats, StageTimer(), lambda k: f"s/d/{k.value}", ["face"]
    )
    assert emitter.counters() == {}  # nothing detected yet: a classifier's agent adds none
    frame = Frame("f.png", np.zeros((100, 200, 3), np.uint8), 1.0)
    prepared = Prepared(frame, np.zeros(1), Detector.load(FACE_SHORT, num_threads=1), 0.1, 0.2)
    found = (
        Detection("face", 0.9, (10.0, 10.0, 50.0, 50.0)),
        Detection("face", 0.8, (math.nan, 10.0, 50.0, 50.0)),  # past the detector: still refused
    )
    faults = OutputFaults(nan_scores=2, degenerate=1, clipped=1, outside=3)
    answer = DetectionResult(found, {"invoke": 1.0}, "cpu", faults)
    emitter.emit((prepared, answer, make_result().model, ["face"]))
    emitter.emit((prepared, answer, make_result().model, ["face"]))
    assert emitter.counters() == {
        "detections": 2,
        "detections.excluded": 0,
        "detections.outside_zones": 0,
        "detections.invalid": 2,
        "detections.nan_scores": 4,
        "detections.degenerate": 2,
        "detections.clipped": 2,
        "detections.outside_frame": 6,
    }
    assert stats.results == 2 and outbox.depth()["result"] == 2
    outbox.close()


def test_the_emit_stage_commits_a_batch_in_order_and_holds_frames_to_the_clouds_count(
    tmp_path: Path,
) -> None:
    """A batch's results and escalations go to the outbox in one transaction, in frame order;
    a detection verdict's box count arms the fewer_than_cloud rule, and a live reconfiguration
    keeps it."""
    settings = AgentSettings(
        model=FACE_SHORT,
        data_dir=tmp_path,
        escalation=EscalationSettings(
            audit_fraction=0,
            budget_per_minute=1e6,
            burst=1000,
            cooldown_s=0.0,
            detection=DetectionEscalationSettings(rules=["fewer_than_cloud"]),
        ),
    )
    outbox = Outbox(tmp_path / "outbox.db")
    commits = 0
    put_many = outbox.put_many

    def counted(items: Any) -> Any:
        nonlocal commits
        commits += 1
        return put_many(items)

    outbox.put_many = counted  # type: ignore[method-assign]
    emitter = ResultEmitter(
        settings, outbox, VerdictBook(), AgentStats(), StageTimer(), lambda k: f"s/d/{k.value}", []
    )
    detector = Detector.load(FACE_SHORT, num_threads=1)
    found = DetectionResult((Detection("face", 0.9, FACE.box),), {"invoke": 1.0}, "cpu")

    def item(n: int) -> Any:
        frame = Frame(f"{n}.png", np.full((360, 640, 3), n, np.uint8), 1.0)
        return (Prepared(frame, np.zeros(1), detector, 0.1, 0.2, changed=True), found)

    model = make_result().model
    emitter.emit_batch([(*item(n), model, ["face"]) for n in range(2)])
    assert commits == 1 and emitter.stats.escalations == 0  # no verdict yet: nothing to hold
    far = DetectedObject(label="face", score=0.8, box=(600.0, 20.0, 620.0, 40.0))
    emitter.verdict_applied(detection_verdict(make_result().msg_id, [FACE, far]))
    emitter.emit_batch([(*item(n), model, ["face"]) for n in range(2, 4)])
    assert commits == 2 and emitter.stats.escalations == 2 and emitter.stats.results == 4
    rows = sorted(outbox.peek(), key=lambda row: row.seq)
    kinds = [row.message.topic.rsplit("/", 1)[1] for row in rows]
    assert kinds == ["result", "result", "result", "escalation", "result", "escalation"]
    result = Topic("s", "d", Kind.RESULT)
    frames = [decode(result, r.message.payload).message for r in rows if r.klass == "result"]
    assert [getattr(f, "frame_id", None) for f in frames] == [f"{n}.png" for n in range(4)]
    emitter._reconfigure(settings.model_copy())  # a remote config: the cloud's count holds
    assert emitter.detection_policy.cloud_count == 2
