"""Detection post-processing on arrays: SSD anchors, box decoding, NMS, back to frame pixels.

Pure numpy, no interpreter: :class:`~edgecascade.shared.runtime.detector.Detector` feeds it the
model's outputs. The anchor generator and the box decoding follow MediaPipe's
``SsdAnchorsCalculator`` and ``TensorsToDetectionsCalculator``, the weighted NMS its
``NonMaxSuppressionCalculator`` (``WEIGHTED``: the boxes that overlap the best one more than the
threshold are averaged, weighted by score, and keep the best one's score). Boxes are
``[xmin, ymin, xmax, ymax]``, normalised to the model input until :func:`to_frame`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edgecascade.shared.runtime.card import Preprocess
from edgecascade.shared.runtime.detect_faults import OutputFaults
from edgecascade.shared.runtime.detection_card import BoxDecoding, SsdAnchors

Floats = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Detection:
    """One detection: label, score and box ``(x0, y0, x1, y1)`` in pixels of the frame."""

    label: str
    score: float
    box: tuple[float, float, float, float]

    def as_dict(self) -> dict[str, object]:
        return {"label": self.label, "score": self.score, "box": list(self.box)}


@dataclass(frozen=True, slots=True)
class DetectionResult:
    """The detections of one frame, best first, how long each stage took, and what of the
    model's outputs was dropped or clipped on the way (NaN scores, degenerate boxes, boxes past
    the frame's edge)."""

    detections: tuple[Detection, ...]
    timings_ms: dict[str, float]
    accelerator: str = "cpu"
    faults: OutputFaults = field(default_factory=OutputFaults)


def _scale(min_scale: float, max_scale: float, index: int, count: int) -> float:
    if count == 1:
        return (min_scale + max_scale) * 0.5
    return min_scale + (max_scale - min_scale) * index / (count - 1)


def _layer_shapes(options: SsdAnchors, first: int, last: int) -> tuple[list[float], list[float]]:
    """(heights, widths) of the anchors of the layers ``first..last-1`` (one stride)."""
    ratios: list[float] = []
    scales: list[float] = []
    n = len(options.strides)
    for layer in range(first, last):
        scale = _scale(options.min_scale, options.max_scale, layer, n)
        if layer == 0 and options.reduce_boxes_in_lowest_layer:
            ratios += [1.0, 2.0, 0.5]
            scales += [0.1, scale, scale]
            continue
        for ratio in options.aspect_ratios:
            ratios.append(ratio)
            scales.append(scale)
        if options.interpolated_scale_aspect_ratio > 0.0:
            following = (
                1.0
                if layer == n - 1
                else _scale(options.min_scale, options.max_scale, layer + 1, n)
            )
            scales.append(math.sqrt(scale * following))
            ratios.append(options.interpolated_scale_aspect_ratio)
    heights = [s / math.sqrt(r) for s, r in zip(scales, ratios, strict=True)]
    widths = [s * math.sqrt(r) for s, r in zip(scales, ratios, strict=True)]
    return heights, widths


def ssd_anchors(options: SsdAnchors) -> Floats:
    """The anchors as ``[N, 4]`` rows of ``(x_center, y_center, width, height)``, in the order
    MediaPipe generates them (layer, row, column, anchor)."""
    rows: list[tuple[float, float, float, float]] = []
    layer = 0
    while layer < options.num_layers:
        last = layer
        while last < len(options.strides) and options.strides[last] == options.strides[layer]:
            last += 1
        heights, widths = _layer_shapes(options, layer, last)
        if options.feature_map_height:
            fh, fw = options.feature_map_height[layer], options.feature_map_width[layer]
        else:
            stride = options.strides[layer]
            fh = math.ceil(options.input_size_height / stride)
            fw = math.ceil(options.input_size_width / stride)
        for y in range(fh):
            for x in range(fw):
                cx, cy = (x + options.anchor_offset_x) / fw, (y + options.anchor_offset_y) / fh
                for h, w in zip(heights, widths, strict=True):
                    size = (1.0, 1.0) if options.fixed_anchor_size else (w, h)
                    rows.append((cx, cy, *size))
        layer = last
    return np.asarray(rows, dtype=np.float32).reshape(-1, 4)


def decode_boxes(raw: Floats, anchors: Floats, options: BoxDecoding) -> Floats:
    """Regressors ``[N, num_coords]`` -> boxes ``[N, 4]`` (xmin, ymin, xmax, ymax) in 0..1."""
    o = options.box_coord_offset
    a, b, c, d = (raw[:, o + i] for i in range(4))
    x, y, w, h = (a, b, c, d) if options.reverse_output_order else (b, a, d, c)
    ax, ay, aw, ah = anchors[:, 0], anchors[:, 1], anchors[:, 2], anchors[:, 3]
    xs, ys = options.x_scale or 1.0, options.y_scale or 1.0
    ws, hs = options.w_scale or 1.0, options.h_scale or 1.0
    cx = x / xs * aw + ax
    cy = y / ys * ah + ay
    if options.apply_exponential_on_box_size:
        w, h = np.exp(w / ws) * aw, np.exp(h / hs) * ah
    else:
        w, h = w / ws * aw, h / hs * ah
    boxes: Floats = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return boxes.astype(np.float32)


def decode_scores(raw: Floats, options: BoxDecoding) -> Floats:
    """Raw scores ``[N]`` -> 0..1 (clipped logits through a sigmoid, or as they are); NaN -> 0."""
    values = np.nan_to_num(raw.astype(np.float64), nan=-np.inf if options.sigmoid_score else 0.0)
    if options.sigmoid_score:
        limit = options.score_clipping_thresh
        values = 1.0 / (1.0 + np.exp(-np.clip(values, -limit, limit)))
    return values.astype(np.float32)


def iou(box: Floats, boxes: Floats) -> Floats:
    """Intersection over union of one box against ``[N, 4]`` boxes (0 where both are empty)."""
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = max(0.0, float((box[2] - box[0]) * (box[3] - box[1])))
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(
        boxes[:, 3] - boxes[:, 1], 0, None
    )
    union = area + areas - inter
    out: Floats = np.where(union > 0, inter / np.where(union > 0, union, 1), 0).astype(np.float32)
    return out


def nms(
    boxes: Floats, scores: Floats, threshold: float, limit: int, weighted: bool
) -> list[tuple[int, Floats]]:
    """Suppressed detections as ``(index of the best box, box)``, best first: each keeps the
    boxes that overlap it by IoU > ``threshold`` from the output, and with ``weighted`` its box
    is their score-weighted mean (MediaPipe's ``WEIGHTED``), else its own (hard NMS)."""
    order = np.argsort(-scores, kind="stable")
    out: list[tuple[int, Floats]] = []
    while order.size and len(out) < limit:
        best = int(order[0])
        overlap = iou(boxes[best], boxes[order])
        merged = order[overlap > threshold] if weighted else order[:1]
        weights = scores[merged][:, None]
        box = boxes[best] if not weighted else (boxes[merged] * weights).sum(0) / weights.sum()
        out.append((best, box.astype(np.float32)))
        order = order[(overlap <= threshold) & (order != best)]
    return out


def to_frame(
    boxes: Floats, height: int, width: int, size: tuple[int, int], prep: Preprocess
) -> Floats:
    """Boxes normalised to the model input ``size`` (height, width) -> pixels of the
    ``height`` x ``width`` frame (:func:`frame_pixels`), clipped to the frame."""
    out = np.clip(frame_pixels(boxes, height, width, size, prep), 0, [width, height] * 2)
    return out.astype(np.float32)


def frame_pixels(
    boxes: Floats, height: int, width: int, size: tuple[int, int], prep: Preprocess
) -> Floats:
    """Boxes normalised to the model input ``size`` (height, width) -> pixels of the
    ``height`` x ``width`` frame, undoing :func:`~edgecascade.shared.runtime.preprocess.fit`
    (stretch, centre crop or letterbox with its rounding); not clipped."""
    in_h, in_w = size
    x: npt.NDArray[np.float64] = boxes[:, [0, 2]].astype(np.float64) * in_w
    y: npt.NDArray[np.float64] = boxes[:, [1, 3]].astype(np.float64) * in_h
    if prep.resize == "letterbox":
        scale = min(in_h / height, in_w / width)
        nh, nw = max(1, round(height * scale)), max(1, round(width * scale))
        top, left = (in_h - nh) // 2, (in_w - nw) // 2
        x, y = (x - left) * width / nw, (y - top) * height / nh
    elif prep.resize == "center_crop":
        side = max(1, round(min(height, width) * prep.crop_ratio))
        top, left = (height - side) // 2, (width - side) // 2
        x, y = x * side / in_w + left, y * side / in_h + top
    else:
        x, y = x * width / in_w, y * height / in_h
    out = np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1)
    return out.astype(np.float32)
