"""The agent's model: a classifier or a detector by the card, the detector's stages split
for the frame pipeline, and detection cards the agent refuses at load."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecascade.edge_agent.models import infer, invoke_tensor, load_model
from edgecascade.edge_agent.rollout import RolloutClient, RolloutFailed
from edgecascade.edge_agent.slots import ModelSlots
from edgecascade.shared.errors import ModelError
from edgecascade.shared.manifest import build_manifest, golden_case
from edgecascade.shared.model_messages import ModelManifest
from edgecascade.shared.runtime.card import ModelCard
from edgecascade.shared.runtime.detect import DetectionResult
from edgecascade.shared.runtime.detection_card import DetectionSpec
from edgecascade.shared.runtime.detector import Detector, Invoked
from edgecascade.shared.runtime.runtime import ModelRuntime
from tests.utils.paths import EDGE_MODEL, FACE_SHORT, PHOTOS


def test_the_card_decides_classifier_or_detector(tmp_path: Path) -> None:
    assert isinstance(load_model(FACE_SHORT, 1), Detector)
    assert isinstance(load_model(EDGE_MODEL, 1), ModelRuntime)
    detector = ModelSlots(tmp_path / "slots").load(FACE_SHORT, 1)
    assert isinstance(detector, Detector) and detector.labels == ("face",)


def test_preprocess_then_detect_tensor_on_another_thread_equals_detect() -> None:
    detector = Detector.load(FACE_SHORT, num_threads=1)
    image = np.asarray(cv2.imread(str(PHOTOS / "astronaut.jpg")), dtype=np.uint8)
    whole = detector.detect(image).detections
    tensors = []
    worker = threading.Thread(target=lambda: tensors.append(detector.preprocess(image)))
    worker.start()
    worker.join()
    split = detector.detect_tensor(tensors[0], image.shape[0], image.shape[1], 1.5)
    assert split.detections == whole and len(whole) == 1
    assert split.timings_ms["preprocess"] == 1.5 and set(split.timings_ms) == {
        "preprocess",
        "invoke",
        "postprocess",
    }
    answer = infer(detector, image)
    assert isinstance(answer, DetectionResult) and answer.detections == whole
    # The agent's loop only invokes; the emit thread decodes the boxes.
    invoked = invoke_tensor(detector, tensors[0], image.shape[0], image.shape[1], 1.5)
    assert isinstance(invoked, Invoked) and set(invoked.timings_ms) == {"preprocess", "invoke"}
    decoded = []
    worker = threading.Thread(target=lambda: decoded.append(invoked.finish()))
    worker.start()
    worker.join()
    assert decoded[0].detections == whole and decoded[0].timings_ms["preprocess"] == 1.5
    assert set(decoded[0].timings_ms) == {"preprocess", "invoke", "postprocess"}


def test_a_camera_frame_may_be_decoded_reduced_for_the_small_input() -> None:
    detector = Detector.load(FACE_SHORT, num_threads=1)
    plan = detector.decode_plan(720, 1280)
    # Letterboxed into 128x128, a 1280x720 frame becomes 128x72: 1/8 (160x90) still covers it.
    assert plan.reduction == 8 and not plan.gray


def test_a_card_whose_anchors_do_not_fit_is_refused_by_the_agent_at_load(tmp_path: Path) -> None:
    model = tmp_path / "faces.tflite"
    shutil.copy(FACE_SHORT, model)
    card = ModelCard.load(FACE_SHORT.with_suffix(".json"))
    assert card.detection is not None and card.detection.anchors is not None
    anchors = card.detection.anchors.model_copy(update={"num_layers": 3, "strides": [8, 16, 16]})
    spec = card.detection.model_copy(update={"anchors": anchors})
    card.model_copy(update={"detection": spec}).save(model.with_suffix(".json"))
    with pytest.raises(ModelError, match=r"faces.tflite: .*896 rows but the card's anchors"):
        ModelSlots(tmp_path / "slots").load(model, 1)


def test_nan_scores_from_the_model_give_no_detection() -> None:
    detector = Detector.load(FACE_SHORT, num_threads=1)
    regressors = np.zeros((896, 16), dtype=np.float32)
    scores = np.full((896, 1), np.nan, dtype=np.float32)
    assert detector.decode([regressors, scores], 480, 640) == ()


def test_a_rollout_smoke_tests_a_detector_and_refuses_anchors_that_do_not_fit(
    tmp_path: Path,
) -> None:
    content = FACE_SHORT.read_bytes()
    card = ModelCard.load(FACE_SHORT.with_suffix(".json"))
    assert card.detection is not None and card.detection.anchors is not None
    photo = np.asarray(cv2.imread(str(PHOTOS / "astronaut.jpg")), dtype=np.uint8)
    png = cv2.imencode(".png", cv2.resize(photo, (128, 128)))[1].tobytes()
    client = RolloutClient(
        ModelSlots(tmp_path / "slots"), None, ack=print, request=print, switch=print, threads=1
    )

    def manifest(detection: DetectionSpec) -> ModelManifest:
        fields = card.model_copy(update={"detection": detection})
        return build_manifest(
            content,
            name="faces",
            version="2",
            labels=card.labels,
            card=fields.model_dump(mode="json", include={"preprocess", "task", "detection"}),
            golden=[golden_case(png, 0, 0.9)],  # top-1 fields: a classifier's check only
        )

    runtime, loaded = client._smoke_test(manifest(card.detection), content)
    assert isinstance(runtime, Detector) and loaded.task == "detection"
    anchors = card.detection.anchors.model_copy(update={"num_layers": 1, "strides": [16]})
    wrong = card.detection.model_copy(update={"anchors": anchors})
    with pytest.raises(RolloutFailed, match=r"does not load: faces 2: .*anchors"):
        client._smoke_test(manifest(wrong), content)
