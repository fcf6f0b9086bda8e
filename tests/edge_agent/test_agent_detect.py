"""An agent running the real face detector over real photos, against a real broker: results with
boxes in original-frame pixels and the frame size, zones, escalations with the frame and the
edge's boxes, the detection counters in telemetry."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgecascade.brokers import MosquittoBroker
from edgecascade.edge_agent.agent import Agent
from edgecascade.edge_agent.settings import (
    DetectionEscalationSettings,
    EscalationSettings,
    SourceSettings,
    ZoneSettings,
)
from edgecascade.shared.codec import decode
from edgecascade.shared.messages import (
    EscalationHeader,
    ResultMessage,
    StateMessage,
    TelemetryMessage,
)
from edgecascade.shared.topics import Kind, Topic
from tests.utils.agents import agent_settings
from tests.utils.mqtt import Collector, wait_until
from tests.utils.paths import FACE_SHORT, PHOTOS

# The astronaut's face (eyes to chin, cheek to cheek), as in tests/runtime/test_detector.py.
FACE_REGION = (190.0, 100.0, 260.0, 165.0)
LEFT_HALF = ZoneSettings(name="left", points=[(0, 0), (0.5, 0), (0.5, 1), (0, 1)])


def holds(box: tuple[float, ...], region: tuple[float, ...], slack: float = 1.0) -> bool:
    inside = box[0] <= region[0] + slack and box[1] <= region[1] + slack
    inside = inside and box[2] >= region[2] - slack and box[3] >= region[3] - slack
    area = (box[2] - box[0]) * (box[3] - box[1])
    return inside and area <= 4 * (region[2] - region[0]) * (region[3] - region[1])


def frames(dest: Path) -> Path:
    """The astronaut (face in the left half), its mirror image (face in the right half) and the
    coffee (no face), as JPEG files: the agent decodes them at a reduced DCT scale."""
    dest.mkdir()
    shutil.copy(PHOTOS / "astronaut.jpg", dest / "a_astronaut.jpg")
    image = np.asarray(cv2.imread(str(PHOTOS / "astronaut.jpg")))
    cv2.imwrite(str(dest / "b_mirrored.jpg"), cv2.flip(image, 1), [cv2.IMWRITE_JPEG_QUALITY, 95])
    shutil.copy(PHOTOS / "coffee.jpg", dest / "c_coffee.jpg")
    return dest


def test_agent_detects_faces_in_zones_and_escalates_with_frame_and_boxes(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    escalation = EscalationSettings(
        budget_per_minute=6000,
        burst=1000,
        cooldown_s=0,
        audit_fraction=0,
        max_side=256,
        detection=DetectionEscalationSettings(rules=["score_band"], score_low=0.5, score_high=0.99),
    )
    settings = agent_settings(
        broker,
        tmp_path / "agent",
        SourceSettings(path=frames(tmp_path / "frames"), fps=1000),
        model=FACE_SHORT,
        threads=1,
        escalation=escalation,
        zones=[LEFT_HALF],
        zone_anchor="center",
    )
    with Collector(broker.settings, "ec/v1/#") as collector:
        agent = Agent(settings)
        assert agent.runtime.decode_plan(512, 512).reduction > 1  # reduced decode exercised
        stats = agent.run(threading.Event())
        assert wait_until(lambda: len(received(collector, Kind.RESULT)) == 3)
        assert wait_until(lambda: len(received(collector, Kind.ESCALATION)) == 1)
        assert wait_until(lambda: any(received(collector, Kind.TELEMETRY)))
        results = {r.frame_id: r for r in received(collector, Kind.RESULT)}
        (header,) = received(collector, Kind.ESCALATION)
        states = received(collector, Kind.STATE)
        telemetry = received(collector, Kind.TELEMETRY)[-1]
    assert stats.frames == 3 and stats.detections == 1 and stats.detections_excluded == 1
    face = results["a_astronaut.jpg"]
    assert face.task == "detection" and face.frame_size == (512, 512) and face.escalated
    (box,) = face.detections
    assert box.label == "face" and box.zone == "left" and holds(box.box, FACE_REGION), box
    assert [(p.index, p.label) for p in face.top] == [(0, "face")]
    assert face.top[0].score == box.score
    mirrored, coffee = results["b_mirrored.jpg"], results["c_coffee.jpg"]
    assert mirrored.detections == [] and not mirrored.escalated  # outside the include zone
    height, width = np.asarray(cv2.imread(str(PHOTOS / "coffee.jpg"))).shape[:2]
    assert coffee.detections == [] and coffee.top == [] and coffee.frame_size == (width, height)
    # The escalation: the whole frame at max_side, the edge's box scaled to it.
    assert isinstance(header, EscalationHeader) and header.result_id == face.msg_id
    assert header.task == "detection" and header.reason.startswith("score_band face")
    assert (header.width, header.height) == (256, 256) and header.roi is None
    (sent,) = header.detections
    assert np.allclose(sent.box, [v / 2 for v in box.box], atol=0.01)
    assert any(isinstance(s, StateMessage) and "detect" in s.capabilities for s in states)
    assert isinstance(telemetry, TelemetryMessage)
    assert telemetry.counters["detections.outside_zones"] == 1
    assert telemetry.counters["detections"] == 1


def received(collector: Collector, kind: Kind) -> list[Any]:
    """The decoded messages of ``kind``; an escalation's frame is checked to be a JPEG of the
    header's size."""
    out: list[Any] = []
    for message in collector.messages:
        parsed = Topic.parse(message.topic)
        if parsed.kind is not kind:
            continue
        decoded = decode(parsed, message.payload)
        if kind is Kind.ESCALATION:
            header = decoded.message
            assert isinstance(header, EscalationHeader)
            image = cv2.imdecode(np.frombuffer(decoded.body, np.uint8), cv2.IMREAD_COLOR)
            assert image is not None and image.shape[:2] == (header.height, header.width)
        if kind is not Kind.RESULT or isinstance(decoded.message, ResultMessage):
            out.append(decoded.message)
    return out


def test_empty_on_a_changed_scene_and_mode_always(broker: MosquittoBroker, tmp_path: Path) -> None:
    source = SourceSettings(path=frames(tmp_path / "frames"), fps=1000)
    unlimited = {"budget_per_minute": 6000, "burst": 1000, "cooldown_s": 0, "audit_fraction": 0}

    def run(device: str, escalation: EscalationSettings, **extra: Any) -> list[Any]:
        settings = agent_settings(
            broker, tmp_path / device, source, model=FACE_SHORT, threads=1, device=device,
            escalation=escalation, **extra,
        )  # fmt: skip
        with Collector(broker.settings, f"ec/v1/s1/{device}/#") as collector:
            stats = Agent(settings).run(threading.Event())
            assert stats.frames == 3
            assert wait_until(lambda: len(received(collector, Kind.RESULT)) == 3)
            assert wait_until(
                lambda: len(received(collector, Kind.ESCALATION)) == stats.escalations
            )
            return received(collector, Kind.ESCALATION)

    # Gating on: every frame differs from the one before; the coffee has no face: unsure.
    only_empty = DetectionEscalationSettings(rules=["empty"])
    ups = run(
        "gated", EscalationSettings(**unlimited, detection=only_empty), gating={"enabled": True}
    )
    assert [(e.frame_id, e.reason) for e in ups] == [
        ("c_coffee.jpg", "empty: nothing found on a changed scene")
    ]
    assert ups[0].detections == [] and ups[0].task == "detection"
    # Cloud-only reference: every frame goes up, whatever the rules say.
    ups = run("cloud", EscalationSettings(mode="always", **unlimited, detection=only_empty))
    assert sorted(e.frame_id for e in ups) == ["a_astronaut.jpg", "b_mirrored.jpg", "c_coffee.jpg"]
    assert {e.reason for e in ups} == {"always"}
    assert [len(e.detections) for e in sorted(ups, key=lambda e: e.frame_id)] == [1, 1, 0]
