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
