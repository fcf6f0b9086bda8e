"""The imagenet pair (built on demand into the cache, so skipped until built) and its helpers."""

from __future__ import annotations

import numpy as np
import pytest

from edgecascade.modelzoo.export import widen_output_range
from edgecascade.modelzoo.imagenet import KNOWN, cache_dir
from edgecascade.shared.errors import ModelError
from edgecascade.shared.runtime.runtime import ModelRuntime


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


BUILT = all(
    (cache_dir() / f"imagenet_{role}_{kind}.tflite").exists()
    for role in ("edge", "cloud")
    for kind in ("fp32", "int8")
)


@pytest.mark.skipif(not BUILT, reason="run: edgecascade models build imagenet")
@pytest.mark.parametrize(("role", "size"), [("edge", 224), ("cloud", 260)])
def test_built_pair_loads_and_int8_agrees_with_fp32(role: str, size: int) -> None:
    skimage = pytest.importorskip("skimage.data")
    fp32 = ModelRuntime.load(cache_dir() / f"imagenet_{role}_fp32.tflite")
    int8 = ModelRuntime.load(cache_dir() / f"imagenet_{role}_int8.tflite")
    for runtime in (fp32, int8):
        spec = runtime.input_spec
        assert (spec.layout, spec.height, spec.width, spec.channels) == ("NHWC", size, size, 3)
        assert runtime.num_classes == len(runtime.labels) == 1000
    for name, classes in KNOWN.items():
        bgr = np.ascontiguousarray(getattr(skimage, name)()[:, :, ::-1])
        top_fp32, top_int8 = fp32.classify(bgr).top(1)[0], int8.classify(bgr).top(1)[0]
        assert top_fp32[0] == top_int8[0]
        assert top_int8[0] in classes
        assert top_int8[2] > 0.3  # confidence did not collapse in int8


@pytest.mark.skipif(not BUILT, reason="run: edgecascade models build imagenet")
def test_a_camera_sized_photo_decoded_at_half_scale_keeps_the_edge_models_top1() -> None:
    """Real photos as 1280x720 JPEG camera frames (scaled to 720 rows, centred on gray): the
    agent's reduced decode (1/2 for the 224-px centre crop) gives the full decode's top-1."""
    import cv2

    from edgecascade.edge_agent.decode import decode_jpeg

    skimage = pytest.importorskip("skimage.data")
    int8 = ModelRuntime.load(cache_dir() / "imagenet_edge_int8.tflite")
    plan = int8.decode_plan(720, 1280)
    assert (plan.reduction, plan.gray) == (2, False)
    for name, classes in KNOWN.items():
        photo = np.ascontiguousarray(getattr(skimage, name)()[:, :, ::-1])
        width = round(photo.shape[1] * 720 / photo.shape[0])
        scaled = cv2.resize(photo, (width, 720), interpolation=cv2.INTER_CUBIC)
        frame = np.full((720, 1280, 3), 128, dtype=np.uint8)
        left = (1280 - width) // 2
        frame[:, left : left + width] = scaled
        jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
        full, reduced = decode_jpeg(jpeg, 1, False), decode_jpeg(jpeg, 2, False)
        assert full is not None and reduced is not None and reduced.shape == (360, 640, 3)
        top_full, top_reduced = int8.classify(full).top(1)[0], int8.classify(reduced).top(1)[0]
        assert top_full[0] == top_reduced[0] and top_reduced[0] in classes, (name, top_reduced)
