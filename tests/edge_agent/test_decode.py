"""Camera-sized JPEG frames decoded at the model's scale, and escalations at their own size."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecascade.benchmarks.camera_frames import write_camera_frames
from edgecascade.edge_agent.decode import jpeg_size
from edgecascade.edge_agent.escalation import escalation_image, escalation_payload
from edgecascade.edge_agent.settings import EscalationSettings
from edgecascade.edge_agent.sources import FolderSource, Frame
from edgecascade.shared.codec import decode
from edgecascade.shared.runtime.card import Preprocess
from edgecascade.shared.runtime.preprocess import InputSpec, TensorSpec, decode_plan
from edgecascade.shared.runtime.runtime import ModelRuntime
from edgecascade.shared.topics import Kind, Topic
from tests.utils.factories import make_result
from tests.utils.paths import EDGE_MODEL, EVAL_SAMPLE


@pytest.fixture(scope="module")
def camera_frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten 1280x720 JPEG frames (upscaled eval images, ImageFolder layout)."""
    return write_camera_frames(EVAL_SAMPLE, tmp_path_factory.mktemp("camera"), 10)


def test_jpeg_size_reads_the_header_and_nothing_else() -> None:
    image = np.zeros((48, 64, 3), dtype=np.uint8)
    jpeg = cv2.imencode(".jpg", image)[1].tobytes()
    png = cv2.imencode(".png", image)[1].tobytes()
    assert jpeg_size(jpeg) == (48, 64)
    assert jpeg_size(png) is None
    assert jpeg_size(jpeg[:20]) is None  # cut before its frame header
    assert jpeg_size(b"") is None


def test_decode_plan_never_goes_below_what_the_model_takes() -> None:
    rgb224 = InputSpec.from_tensor(TensorSpec("x", 0, (1, 224, 224, 3), "int8", 1.0, 0))
    crop = Preprocess(resize="center_crop", crop_ratio=0.875)
    # 720 * 0.875 = 630 px of crop for 224: half scale (315) keeps it, quarter (157) would not.
    assert decode_plan(720, 1280, rgb224, crop).reduction == 2
    assert decode_plan(720, 1280, rgb224, Preprocess(resize="stretch")).reduction == 2
    assert decode_plan(224, 224, rgb224, Preprocess()).reduction == 1
    gray28 = InputSpec.from_tensor(TensorSpec("x", 0, (1, 28, 28, 1), "int8", 1.0, 0))
    plan = decode_plan(720, 1280, gray28, Preprocess(color="gray"))
    assert (plan.reduction, plan.gray) == (8, True)


def test_reduced_decode_gives_the_full_decodes_top1(camera_frames: Path) -> None:
    runtime = ModelRuntime.load(EDGE_MODEL, num_threads=1)
    full, reduced = (
        FolderSource(camera_frames),
        FolderSource(camera_frames, plan=runtime.decode_plan),
    )
    pairs = []
    while (a := full.read()) is not None:
        b = reduced.read()
        assert b is not None and b.frame_id == a.frame_id
        assert a.image.shape == (720, 1280, 3) and a.encoded is None
        assert b.image.shape == (90, 160) and b.encoded is not None  # 1/8 scale, gray
        pairs.append(
            (runtime.classify(a.image).top(1)[0][1], runtime.classify(b.image).top(1)[0][1])
        )
    assert len(pairs) == 10
    assert all(a == b for a, b in pairs), pairs  # same top-1 on every frame, no tolerance


def _escalated_size(frame: Frame, **settings: object) -> tuple[int, int]:
    config = EscalationSettings.model_validate(settings)
    header, payload = escalation_payload(frame, make_result(), "test", config)
    body = decode(Topic("s", "d", Kind.ESCALATION), payload).body
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[:2] == (header.height, header.width)
    return header.width, header.height


def test_escalation_keeps_its_configured_size(camera_frames: Path) -> None:
    runtime = ModelRuntime.load(EDGE_MODEL, num_threads=1)
    frame = FolderSource(camera_frames, plan=runtime.decode_plan).read()
    assert frame is not None and frame.image.shape == (90, 160)  # what the model got
    assert _escalated_size(frame) == (1280, 720)  # no max_side: the full frame
    assert _escalated_size(frame, max_side=640) == (640, 360)
    assert _escalated_size(frame, max_side=100) == (100, 56)
    assert _escalated_size(frame, roi=(600, 300, 200, 100)) == (200, 100)  # full-frame pixels
    full = cv2.imread(str(camera_frames / frame.frame_id), cv2.IMREAD_COLOR)
    assert full is not None
    again = escalation_image(frame, EscalationSettings(roi=(600, 300, 200, 100)))
    assert again.shape == full.shape  # decoded again at full size: the ROI is in its pixels
    assert np.array_equal(again, full)


def test_a_colour_frame_big_enough_is_escalated_as_it_is(camera_frames: Path) -> None:
    frame = FolderSource(camera_frames).read()
    assert frame is not None
    image = np.asarray(cv2.resize(frame.image, (640, 360)), dtype=np.uint8)
    encoded = (camera_frames / frame.frame_id).read_bytes()
    reduced = Frame(frame.frame_id, image, 0.0, encoded=encoded)  # as a half-scale decode
    assert escalation_image(reduced, EscalationSettings(max_side=640)) is image
    assert escalation_image(reduced, EscalationSettings(max_side=641)).shape == (720, 1280, 3)
    assert escalation_image(frame, EscalationSettings()) is frame.image  # not reduced
