"""The imagenet pair: the committed int8 models (models/imagenet) on the committed photos
(data/imagenet-photos), the folder's generated READMEs, and the build's fp32 models when built."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from edgecascade.modelzoo.cli import imagenet_readme
from edgecascade.modelzoo.export import widen_output_range
from edgecascade.modelzoo.imagenet import COMMITTED, KNOWN, cache_dir
from edgecascade.modelzoo.photos import PHOTOS, readme
from edgecascade.shared.errors import ModelError
from edgecascade.shared.runtime.card import load_card_for
from edgecascade.shared.runtime.runtime import ModelRuntime
from tests.utils.paths import IMAGENET_PHOTOS

SIZES = {"edge": 224, "cloud": 260}


def known_photo(name: str) -> Path:
    (path,) = IMAGENET_PHOTOS.glob(f"*/{name}.jpg")
    return path


def read_bgr(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return np.asarray(image)


def test_widen_output_range_only_ever_widens() -> None:
    qsvs = {
        "logits": {"min": np.array([-7.5], np.float32), "max": np.array([30.0], np.float32)},
        "other": {"min": np.array([0.0]), "max": np.array([1.0])},
    }
    widened = widen_output_range(qsvs, "logits", -16.0, 24.0)
    assert float(widened["logits"]["min"][0]) == -16.0
    assert float(widened["logits"]["max"][0]) == 30.0  # already wider: kept
    assert widened["other"] is qsvs["other"]
    assert float(qsvs["logits"]["min"][0]) == -7.5  # the input is not modified
    with pytest.raises(ModelError, match="no calibration statistics"):
        widen_output_range(qsvs, "missing", -1, 1)


@pytest.mark.parametrize("role", ["edge", "cloud"])
def test_committed_int8_model_is_its_card_and_classifies_the_known_photos(role: str) -> None:
    path = COMMITTED / f"imagenet_{role}_int8.tflite"
    content = path.read_bytes()
    card = load_card_for(path)
    assert hashlib.sha256(content).hexdigest() == card.sha256
    assert len(content) == card.size_bytes and 5_000_000 <= len(content) <= 15_000_000
    assert card.license and "Apache-2.0" in card.license and card.build_command
    runtime = ModelRuntime.load(path)
    spec, size = runtime.input_spec, SIZES[role]
    assert (spec.layout, spec.height, spec.width, spec.channels) == ("NHWC", size, size, 3)
    assert runtime.num_classes == len(runtime.labels) == 1000
    for name, classes in KNOWN.items():
        top = runtime.classify(read_bgr(known_photo(name))).top(1)[0]
        assert top[0] in classes, (name, top)
        assert top[2] > 0.3  # confidence did not collapse in int8


def test_committed_readmes_are_generated_from_the_cards_and_the_photo_list() -> None:
    _cards, text = imagenet_readme(COMMITTED)
    assert (COMMITTED / "README.md").read_text() == text
    assert (IMAGENET_PHOTOS / "README.md").read_text() == readme()
    on_disk = {p.relative_to(IMAGENET_PHOTOS) for p in IMAGENET_PHOTOS.rglob("*.jpg")}
    assert on_disk == {Path(p.label or "") / f"{p.name}.jpg" for p in PHOTOS}
    labels = load_card_for(COMMITTED / "imagenet_edge_int8.tflite").labels
    assert all(p.label in labels for p in PHOTOS if p.label)  # folder names are model labels


BUILT = all((cache_dir() / f"imagenet_{role}_fp32.tflite").exists() for role in SIZES)


@pytest.mark.skipif(
    not BUILT, reason="fp32 models are not committed: edgecascade models build imagenet"
)
@pytest.mark.parametrize("role", ["edge", "cloud"])
def test_built_int8_agrees_with_fp32(role: str) -> None:
    fp32 = ModelRuntime.load(cache_dir() / f"imagenet_{role}_fp32.tflite")
    int8 = ModelRuntime.load(cache_dir() / f"imagenet_{role}_int8.tflite")
    for name in KNOWN:
        bgr = read_bgr(known_photo(name))
        assert fp32.classify(bgr).top(1)[0][0] == int8.classify(bgr).top(1)[0][0]


def test_a_camera_sized_photo_decoded_at_half_scale_keeps_the_edge_models_top1() -> None:
    """Real photos as 1280x720 JPEG camera frames (scaled to 720 rows, centred on gray): the
    agent's reduced decode (1/2 for the 224-px centre crop) gives the full decode's top-1, or
    one of the photo's classes where the full decode's top-1 is a near tie."""
    import cv2

    from edgecascade.edge_agent.decode import decode_jpeg

    int8 = ModelRuntime.load(COMMITTED / "imagenet_edge_int8.tflite")
    plan = int8.decode_plan(720, 1280)
    assert (plan.reduction, plan.gray) == (2, False)
    checked_same = 0
    for name, classes in KNOWN.items():
        photo = read_bgr(known_photo(name))
        width = round(photo.shape[1] * 720 / photo.shape[0])
        scaled = cv2.resize(photo, (width, 720), interpolation=cv2.INTER_CUBIC)
        frame = np.full((720, 1280, 3), 128, dtype=np.uint8)
        left = (1280 - width) // 2
        frame[:, left : left + width] = scaled
        jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
        full, reduced = decode_jpeg(jpeg, 1, False), decode_jpeg(jpeg, 2, False)
        assert full is not None and reduced is not None and reduced.shape == (360, 640, 3)
        on_full = int8.classify(full)
        top_full, top_reduced = on_full.top(1)[0], int8.classify(reduced).top(1)[0]
        assert top_reduced[0] in classes, (name, top_reduced)
        runner_up = on_full.top(2)[1][2]
        if top_full[2] - runner_up > 0.1:  # chelsea's cat classes are a near tie: either is right
            assert top_reduced[0] == top_full[0], (name, top_full, top_reduced)
            checked_same += 1
    assert checked_same  # coffee at least
