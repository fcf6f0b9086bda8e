"""Image -> input tensor, from the model's own input spec and its card's preprocessing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edgecascade.shared.runtime.card import Preprocess

Image = npt.NDArray[np.uint8]
Array = npt.NDArray[Any]


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """What the interpreter says about one tensor."""

    name: str
    index: int
    shape: tuple[int, ...]
    dtype: str  # "float32", "int8", "uint8"
    scale: float  # 0.0 when the tensor is not quantized
    zero_point: int

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0


@dataclass(frozen=True, slots=True)
class InputSpec:
    """A 4-D image input: ``NHWC`` or ``NCHW``."""

    tensor: TensorSpec
    layout: str
    height: int
    width: int
    channels: int

    @classmethod
    def from_tensor(cls, tensor: TensorSpec) -> InputSpec:
        shape = tensor.shape
        if len(shape) != 4:
            raise ValueError(f"input {tensor.name!r} has shape {shape}; an image model needs 4-D")
        if shape[3] in (1, 3):
            return cls(tensor, "NHWC", shape[1], shape[2], shape[3])
        if shape[1] in (1, 3):
            return cls(tensor, "NCHW", shape[2], shape[3], shape[1])
        raise ValueError(f"input {tensor.name!r} has shape {shape}: neither 1 nor 3 channels")


def to_channels(image: Array, color: str, channels: int) -> Array:
    """Convert an OpenCV image (HxW or HxWx1 gray, HxWx3 BGR, HxWx4 BGRA) to the model's colour
    order, HxWxC, contiguous (OpenCV's table lookup takes it as it is)."""
    import cv2

    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if channels == 1 or color == "gray":
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        return gray[:, :, None] if channels == 1 else np.repeat(gray[:, :, None], 3, axis=2)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB if color == "rgb" else cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if color == "rgb" else image


def shrink_factor(height: int, width: int, spec: InputSpec, prep: Preprocess) -> float:
    """How much :func:`fit` scales a ``height`` x ``width`` frame (< 1: it shrinks it). A frame
    decoded smaller by up to ``1 / shrink_factor`` reaches the model unchanged but for the
    resize's rounding: the bound a reduced JPEG decode (:func:`decode_plan`) keeps to."""
    if prep.resize == "center_crop":
        return max(spec.height, spec.width) / max(1.0, min(height, width) * prep.crop_ratio)
    if prep.resize == "letterbox":
        return min(spec.height / height, spec.width / width)
    return max(spec.height / height, spec.width / width)


@dataclass(frozen=True, slots=True)
class DecodePlan:
    """How small a frame may be decoded for a model: a JPEG DCT scale, and whether gray will do."""

    reduction: int  # 1 (full size), 2, 4 or 8
    gray: bool


def decode_plan(height: int, width: int, spec: InputSpec, prep: Preprocess) -> DecodePlan:
    """The largest JPEG DCT scale (8, 4 or 2; 1 = full size) at which a ``height`` x ``width``
    frame still is at least as large as what :func:`fit` takes from it, so decoding at that
    scale costs a fraction of a full decode and the model sees no upscaled pixel; gray when the
    model reads one channel."""
    factor = shrink_factor(height, width, spec, prep)
    reduction = next((r for r in (8, 4, 2) if factor * r <= 1.0), 1)
    return DecodePlan(reduction, spec.channels == 1 or prep.color == "gray")


def fit(image: Array, height: int, width: int, prep: Preprocess) -> Array:
    """Resize ``image`` (HxW or HxWxC) to ``height`` x ``width`` by the card's resize mode, in
    one resize; crops are views. The result keeps the image's number of dimensions."""
    h, w = image.shape[:2]
    if prep.resize == "center_crop":
        side = max(1, round(min(h, w) * prep.crop_ratio))
        top, left = (h - side) // 2, (w - side) // 2
        image = image[top : top + side, left : left + side]
    elif prep.resize == "letterbox":
        scale = min(height / h, width / w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        resized = _resize(image, nh, nw)
        canvas = np.zeros((height, width, *image.shape[2:]), dtype=np.uint8)
        top, left = (height - nh) // 2, (width - nw) // 2
        canvas[top : top + nh, left : left + nw] = resized
        return canvas
    return _resize(image, height, width)


def _resize(image: Array, height: int, width: int) -> Array:
    import cv2 as cv

    if image.shape[:2] == (height, width):
        return image
    shrinking = image.shape[0] > height or image.shape[1] > width
    interpolation = cv.INTER_AREA if shrinking else cv.INTER_LINEAR
    out: Array = cv.resize(image, (width, height), interpolation=interpolation)
    return out[:, :, None] if out.ndim < image.ndim else out


def quantize(values: npt.NDArray[np.float32], tensor: TensorSpec) -> Array:
    """Float input -> the tensor's dtype with its scale and zero point (float stays float)."""
    if tensor.dtype == "float32":
        return values.astype(np.float32)
    info = np.iinfo(np.dtype(tensor.dtype))
    if not tensor.quantized:  # integer input without quantization: raw values
        return np.clip(np.rint(values), info.min, info.max).astype(tensor.dtype)
    q = np.rint(values / tensor.scale + tensor.zero_point)
    out: Array = np.clip(q, info.min, info.max).astype(tensor.dtype)
    return out


def dequantize(values: Array, tensor: TensorSpec) -> npt.NDArray[np.float32]:
    if tensor.quantized:
        return ((values.astype(np.float32) - tensor.zero_point) * tensor.scale).astype(np.float32)
    return values.astype(np.float32)


def pixel_table(spec: InputSpec, prep: Preprocess) -> Array:
    """What each of the 256 pixel values becomes in the input tensor: normalisation and
    quantization folded into one lookup table, so a frame costs one indexing pass. The table is
    ``[256]`` when every channel is normalised alike, else ``[256, channels]``; ValueError when
    the card's per-channel values do not fit the input's channels."""
    levels = np.arange(256, dtype=np.float32)
    mean, std = prep.per_channel(spec.channels)
    if spec.tensor.dtype == "uint8" and not spec.tensor.quantized:
        return quantize(levels, spec.tensor)
    if len(set(mean)) == 1 and len(set(std)) == 1:
        return quantize((levels - mean[0]) / std[0], spec.tensor)
    m, s = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    return quantize((levels[:, None] - m[None, :]) / s[None, :], spec.tensor)


def preprocess(
    image: Image, spec: InputSpec, prep: Preprocess, table: Array | None = None
) -> Array:
    """A batch-of-one input tensor for ``image`` (pass ``pixel_table(spec, prep)`` to reuse it).

    The frame is fitted first, at its own colour (one resize, of the contiguous decoded image),
    then its small result takes the model's channel order and the lookup table (OpenCV's
    ``LUT`` when every channel shares one table: several times faster than numpy indexing and
    without the GIL, which the model's thread needs)."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"expected a uint8 HxW or HxWxC image, got {image.dtype} {image.shape}")
    if image.ndim == 3 and image.shape[2] == 4:
        image = to_channels(image, "bgr", 3)  # resize three channels, not four
    pixels = to_channels(fit(image, spec.height, spec.width, prep), prep.color, spec.channels)
    lut = pixel_table(spec, prep) if table is None else table
    if lut.ndim == 1 and lut.dtype.name in ("uint8", "int8", "float32"):
        import cv2

        looked_up = np.asarray(cv2.LUT(np.ascontiguousarray(pixels), lut)).reshape(pixels.shape)
    else:
        looked_up = lut[pixels] if lut.ndim == 1 else lut[pixels, np.arange(lut.shape[1])]
    tensor: Array = looked_up[None]
    if spec.layout == "NCHW":
        tensor = tensor.transpose(0, 3, 1, 2)
    return tensor
