"""Preprocessing and postprocessing seams with synthetic tensor specs."""

from __future__ import annotations

import numpy as np
import pytest

from edgecascade.shared.runtime.card import Preprocess
from edgecascade.shared.runtime.preprocess import (
    InputSpec,
    TensorSpec,
    dequantize,
    fit,
    preprocess,
    quantize,
    to_channels,
)
from edgecascade.shared.runtime.scores import (
    looks_like_probabilities,
    normalized_entropy,
    sharpen,
    softmax,
    top2_margin,
)


def spec(dtype: str, shape: tuple[int, ...], scale: float = 0.0, zero_point: int = 0) -> InputSpec:
    return InputSpec.from_tensor(TensorSpec("input", 0, shape, dtype, scale, zero_point))


def test_quantize_dequantize_round_trip() -> None:
    tensor = TensorSpec("t", 0, (4,), "int8", 1 / 128, -1)
    values = np.array([-0.9921875, 0.0, 0.5, 0.9921875], dtype=np.float32)
    q = quantize(values, tensor)
    assert q.dtype == np.int8
    assert np.allclose(dequantize(q, tensor), values, atol=1 / 128)
    assert quantize(np.array([100.0], dtype=np.float32), tensor)[0] == 127  # clipped
    assert quantize(values, TensorSpec("f", 0, (4,), "float32", 0.0, 0)).dtype == np.float32


def test_layouts_and_bad_shapes() -> None:
    assert spec("float32", (1, 224, 224, 3)).layout == "NHWC"
    nchw = spec("float32", (1, 3, 32, 48))
    assert (nchw.layout, nchw.height, nchw.width) == ("NCHW", 32, 48)
    image = np.zeros((10, 20, 3), dtype=np.uint8)
    assert preprocess(image, nchw, Preprocess()).shape == (1, 3, 32, 48)
    with pytest.raises(ValueError, match="4-D"):
        spec("float32", (1, 1000))
    with pytest.raises(ValueError, match="channels"):
        spec("float32", (1, 5, 5, 5))


def test_center_crop_takes_the_centre() -> None:
    image = np.zeros((100, 200, 1), dtype=np.uint8)
    image[25:75, 75:125] = 255  # a white square in the middle
    cropped = fit(image, 10, 10, Preprocess(resize="center_crop", crop_ratio=0.5))
    assert cropped.shape == (10, 10, 1)
    assert cropped.min() == 255


def test_letterbox_pads_and_keeps_aspect() -> None:
    image = np.full((50, 100, 3), 200, dtype=np.uint8)
    boxed = fit(image, 100, 100, Preprocess(resize="letterbox"))
    assert boxed.shape == (100, 100, 3)
    assert boxed[0].max() == 0 and boxed[50].min() == 200


def test_colour_orders() -> None:
    bgr = np.zeros((2, 2, 3), dtype=np.uint8)
    bgr[..., 0] = 255  # blue
    assert to_channels(bgr, "rgb", 3)[0, 0].tolist() == [0, 0, 255]
    assert to_channels(bgr, "bgr", 3)[0, 0].tolist() == [255, 0, 0]
    gray = np.full((2, 2), 7, dtype=np.uint8)
    assert to_channels(gray, "rgb", 3).shape == (2, 2, 3)
    assert to_channels(bgr, "rgb", 1).shape == (2, 2, 1)


def test_normalisation_then_uint8_quantization() -> None:
    s = spec("uint8", (1, 2, 2, 3), scale=1 / 127.5, zero_point=128)
    image = np.array([[[0, 128, 255]] * 2] * 2, dtype=np.uint8)
    tensor = preprocess(image, s, Preprocess(color="bgr"))
    assert tensor.dtype == np.uint8
    assert tensor[0, 0, 0].tolist() == [1, 128, 255]  # (x - 127.5) / 127.5, quantized back


def test_scores() -> None:
    logits = np.array([2.0, 1.0, 0.1], dtype=np.float32)
    p = softmax(logits)
    assert p.sum() == pytest.approx(1.0)
    assert looks_like_probabilities(p) and not looks_like_probabilities(logits)
    assert softmax(logits, temperature=2.0).max() < p.max()  # flatter
    assert np.allclose(sharpen(p, 2.0), softmax(logits, 2.0), atol=1e-6)
    assert normalized_entropy(np.array([1.0, 0.0])) == pytest.approx(0.0, abs=1e-6)
    assert normalized_entropy(np.full(4, 0.25)) == pytest.approx(1.0)
    assert top2_margin(np.array([0.6, 0.3, 0.1])) == pytest.approx(0.3)
