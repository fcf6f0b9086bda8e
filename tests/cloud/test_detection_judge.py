"""The cloud detector's answer made safe for the contract, and a worker that a detector fails
on: what a model gets wrong is clipped or dropped and counted, never a crash."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sqlalchemy import create_engine

from edgecascade.cloud.detection import Judgement, label_summary, to_objects, verdict_fields
from edgecascade.cloud.settings import WorkerSection
from edgecascade.cloud.worker import ReinferenceWorker, _Job
from edgecascade.shared.boxes import agreement
from edgecascade.shared.config import MqttSettings
from edgecascade.shared.ids import new_message_id
from edgecascade.shared.messages import EscalationHeader, ModelRef
from edgecascade.shared.runtime.detect import Detection
from edgecascade.shared.runtime.runtime import ModelRuntime
from edgecascade.shared.topics import Kind, Topic
from tests.utils.detections import box
from tests.utils.paths import CLOUD_MODEL


def header(**fields: Any) -> EscalationHeader:
    return EscalationHeader(
        task="detection",
        result_id=new_message_id(),
        frame_id="f1",
        captured_at=1.0,
        model=ModelRef(name="edge", version="1"),
        top=[],
        width=64,
        height=48,
        **fields,
    )


def test_boxes_past_the_frame_are_clipped_and_non_finite_ones_dropped() -> None:
    found = [
        Detection("face", 0.5, (-5.0, 10.0, 30.0, 60.0)),  # past the left and bottom edges
        Detection("face", math.nan, (1.0, 1.0, 2.0, 2.0)),
        Detection("face", 0.9, (1.0, math.inf, 2.0, 2.0)),
        Detection("face", 0.9, (70.0, 50.0, 80.0, 60.0)),  # wholly outside the frame
        Detection("face", 1.5, (30.0, 30.0, 40.0, 40.0)),  # a score past 1
        Detection("person", 0.7, (10.0, 10.0, 20.0, 20.0)),
    ]
    objects, dropped = to_objects(found, 64, 48)
    assert dropped == 3
    assert [(o.label, o.score, o.box) for o in objects] == [
        ("face", 1.0, (30.0, 30.0, 40.0, 40.0)),
        ("person", 0.7, (10.0, 10.0, 20.0, 20.0)),
        ("face", 0.5, (0.0, 10.0, 30.0, 48.0)),
    ]


def test_a_detection_verdict_agrees_only_when_every_box_matched() -> None:
    edge, cloud = [box("face", 0.8, 4, 4)], [box("face", 0.9, 4, 4), box("person", 0.6, 30, 20)]
    scored = agreement(edge, cloud)
    fields = verdict_fields(header(detections=edge), Judgement(cloud, scored, 0, 0, 1.0), ["face"])
    assert fields["agrees"] is False and (fields["edge_precision"], fields["edge_recall"]) == (
        1.0,
        0.5,
    )
    assert (fields["label"], fields["label_index"], fields["edge_label"]) == ("face", 0, "face")
    assert [p["label"] for p in fields["top"]] == ["face", "person"]
    assert fields["top"][1]["index"] == 0  # a label the model does not list, not a number
    nothing = verdict_fields(header(), Judgement([], agreement([], []), 0, 0, 1.0), ["face"])
    assert nothing["agrees"] is True and (nothing["label"], nothing["label_index"]) == ("", -1)
    assert label_summary([], ["face"]) == []


class _Broken:
    """A detector whose model fails on every frame."""

    def judge(self, header: EscalationHeader, image: Any) -> Judgement:
        raise ValueError("the interpreter returned garbage")


def test_a_detector_that_fails_rejects_the_frame_and_the_worker_goes_on() -> None:
    worker = ReinferenceWorker(
        create_engine("sqlite://"),
        ModelRuntime.load(CLOUD_MODEL),
        mqtt=MqttSettings(),
        options=WorkerSection(model=CLOUD_MODEL),
        detector=_Broken(),  # type: ignore[arg-type]
    )
    job = _Job("t", Topic("s1", "cam1", Kind.ESCALATION), header(), np.zeros((48, 64, 3), np.uint8))
    assert worker._judge(job) is None
    assert worker.counts["rejected"] == 1
