"""Detection models: one image in, detections out, by the card's post-processing family.

:class:`Detector` is the detection counterpart of
:class:`~edgecascade.shared.runtime.runtime.ModelRuntime` (which stays one input, one output,
classification). It needs a card with ``task: detection`` and a ``detection`` section
(:mod:`~edgecascade.shared.runtime.detection_card`); the model's outputs are checked against the
family at load, naming the model and what does not match: ``anchors`` wants a regressor tensor
``[1, N, num_coords]`` and a score tensor ``[1, N, 1]`` with N the number of anchors the card
generates; ``ssd`` wants the four outputs of ``TFLite_Detection_PostProcess``. Boxes come back in
pixels of the frame given to :meth:`Detector.detect`, the resize of the card's preprocessing
undone. Bad outputs (NaN scores, degenerate boxes, boxes past the frame's edge) are dropped or
clipped and counted (:mod:`~edgecascade.shared.runtime.detect_faults`), never raised. One
:class:`Detector` is not thread-safe.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecascade.shared.errors import ModelError
from edgecascade.shared.runtime.card import ModelCard, card_path_for
from edgecascade.shared.runtime.detect import (
    Detection,
    DetectionResult,
    Floats,
    decode_boxes,
    decode_scores,
    frame_pixels,
    nms,
    ssd_anchors,
)
from edgecascade.shared.runtime.detect_faults import OutputFaults, clip, screen
from edgecascade.shared.runtime.detection_card import DetectionSpec
from edgecascade.shared.runtime.preprocess import (
    Array,
    DecodePlan,
    Image,
    InputSpec,
    TensorSpec,
    decode_plan,
    dequantize,
    pixel_table,
    preprocess,
)
from edgecascade.shared.runtime.runtime import (
    SUPPORTED_DTYPES,
    TFLITE_IDENTIFIER,
    Accelerator,
    open_interpreter,
    read_model_file,
    tensor_spec,
)


def _anchor_outputs(
    outputs: list[TensorSpec], spec: DetectionSpec, source: str
) -> tuple[TensorSpec, TensorSpec, Floats]:
    """(regressors, scores, anchors), checked against the card's anchors."""
    assert spec.anchors is not None  # the card's validator requires it for this family
    anchors = ssd_anchors(spec.anchors)
    coords = spec.decoding.num_coords
    shapes = [t.shape for t in outputs]
    regressors = [t for t in outputs if len(t.shape) == 3 and t.shape[2] == coords]
    scores = [t for t in outputs if len(t.shape) == 3 and t.shape[2] == 1]
    if len(outputs) != 2 or len(regressors) != 1 or len(scores) != 1:
        raise ModelError(
            f"{source}: the card's detection family 'anchors' needs two outputs, regressors "
            f"[1, N, {coords}] and scores [1, N, 1]; the model has {len(outputs)}: {shapes}"
        )
    for tensor in (regressors[0], scores[0]):
        if tensor.shape[1] != len(anchors):
            raise ModelError(
                f"{source}: output {tensor.name!r} has {tensor.shape[1]} rows but the card's "
                f"anchors number {len(anchors)}: the anchor options do not fit this model"
            )
    return regressors[0], scores[0], anchors


def _ssd_outputs(outputs: list[TensorSpec], source: str) -> tuple[TensorSpec, ...]:
    """(boxes, classes, scores, count) of ``TFLite_Detection_PostProcess``, by shape; classes
    before scores in the model's output order (the operator's)."""
    shapes = [t.shape for t in outputs]
    boxes = [t for t in outputs if len(t.shape) == 3 and t.shape[2] == 4]
    count = [t for t in outputs if int(np.prod(t.shape)) == 1]
    rows = [t for t in outputs if len(t.shape) == 2 and t not in boxes and t not in count]
    n = boxes[0].shape[1] if len(boxes) == 1 else -1
    if len(outputs) != 4 or len(boxes) != 1 or len(count) != 1 or len(rows) != 2:
        raise ModelError(
            f"{source}: the card's detection family 'ssd' needs the four outputs of "
            f"TFLite_Detection_PostProcess (boxes [1, N, 4], classes [1, N], scores [1, N], "
            f"count [1]); the model has {len(outputs)}: {shapes}"
        )
    if any(t.shape[1] != n for t in rows):
        raise ModelError(
            f"{source}: classes and scores {[t.shape for t in rows]} do not have N={n}"
        )
    return boxes[0], rows[0], rows[1], count[0]


@dataclass(frozen=True, slots=True)
class Invoked:
    """One frame's interpreter outputs (dequantized copies), not decoded yet, with the frame's
    size and the stage times so far: :meth:`Detector.finish` makes the result of them."""

    detector: Detector
    raw: list[Floats]
    height: int
    width: int
    timings_ms: dict[str, float]

    def finish(self) -> DetectionResult:
        return self.detector.finish(self)


class Detector:
    """One loaded detection model; :meth:`detect` takes a decoded frame (HxW or HxWxC uint8,
    OpenCV's BGR order) and returns its detections."""

    def __init__(
        self,
        content: bytes,
        source: str,
        card: ModelCard,
        num_threads: int = 2,
        accelerator: Accelerator | None = None,
    ) -> None:
        self.source = source
        self.sha256 = hashlib.sha256(content).hexdigest()
        if content[4:8] != TFLITE_IDENTIFIER:
            raise ModelError(f"{source}: not a TFLite model (file identifier {content[4:8]!r})")
        if card.task != "detection" or card.detection is None:
            raise ModelError(f"{source}: its card says task {card.task!r}, not 'detection'")
        self.card, self.spec = card, card.detection
        self._interpreter, self.accelerator = open_interpreter(
            content, source, num_threads, accelerator
        )
        inputs = [tensor_spec(d) for d in self._interpreter.get_input_details()]
        outputs = [tensor_spec(d) for d in self._interpreter.get_output_details()]
        if len(inputs) != 1:
            raise ModelError(f"{source}: a detector needs one image input, it has {len(inputs)}")
        for tensor in inputs + outputs:
            if tensor.dtype not in SUPPORTED_DTYPES:
                raise ModelError(f"{source}: tensor {tensor.name!r} has dtype {tensor.dtype}")
        try:
            self.input_spec = InputSpec.from_tensor(inputs[0])
            self._pixel_table = pixel_table(self.input_spec, card.preprocess)
        except ValueError as exc:
            raise ModelError(f"{source}: {exc}") from exc
        self._anchors: Floats | None = None
        self.faults = OutputFaults()  # what decode dropped or clipped, summed over all frames
        if self.spec.family == "anchors":
            regressors, scores, self._anchors = _anchor_outputs(outputs, self.spec, source)
            self._outputs: tuple[TensorSpec, ...] = (regressors, scores)
        else:
            self._outputs = _ssd_outputs(outputs, source)

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        num_threads: int = 2,
        card: ModelCard | None = None,
        accelerator: Accelerator | None = None,
    ) -> Detector:
        """Load a ``.tflite`` with ``card``, else its card file (a detector needs one)."""
        content = read_model_file(path)
        if card is None:
            if not card_path_for(path).exists():
                raise ModelError(
                    f"{path}: a detection model needs a card ({card_path_for(path).name}) "
                    "with task 'detection' and its detection section"
                )
            card = ModelCard.load(card_path_for(path))
        return cls(content, str(path), card, num_threads, accelerator)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.card.labels)

    def decode_plan(self, height: int, width: int) -> DecodePlan:
        """How small a ``height`` x ``width`` frame may be decoded for this model."""
        return decode_plan(height, width, self.input_spec, self.card.preprocess)

    def preprocess(self, image: Image) -> Array:
        """The model's input tensor for ``image``: the pipeline's first stage, which may run on
        another thread than :meth:`detect_tensor` (it does not touch the interpreter)."""
        return preprocess(image, self.input_spec, self.card.preprocess, self._pixel_table)

    def invoke_raw(self, tensor: Array) -> list[Floats]:
        """Run the interpreter on a prepared tensor; the outputs dequantized, in load's order."""
        self._interpreter.set_tensor(self.input_spec.tensor.index, tensor)
        self._interpreter.invoke()
        return [dequantize(self._interpreter.get_tensor(t.index), t) for t in self._outputs]

    def detect(self, image: Image) -> DetectionResult:
        t0 = time.perf_counter()
        tensor = self.preprocess(image)
        preprocess_ms = (time.perf_counter() - t0) * 1000
        return self.detect_tensor(tensor, image.shape[0], image.shape[1], preprocess_ms)

    def detect_tensor(
        self, tensor: Array, height: int, width: int, preprocess_ms: float = 0.0
    ) -> DetectionResult:
        """Invoke and decode an input :meth:`preprocess` made from a ``height`` x ``width``
        frame (possibly on another thread); boxes in that frame's pixels."""
        return self.finish(self.invoke_tensor(tensor, height, width, preprocess_ms))

    def invoke_tensor(
        self, tensor: Array, height: int, width: int, preprocess_ms: float = 0.0
    ) -> Invoked:
        """The interpreter's half of :meth:`detect_tensor`: its outputs, not decoded yet. The
        agent's loop hands them to the emit thread, which decodes them (:meth:`finish`) while
        the loop invokes the next frame."""
        t1 = time.perf_counter()
        raw = self.invoke_raw(tensor)
        invoke_ms = (time.perf_counter() - t1) * 1000
        return Invoked(self, raw, height, width, {"preprocess": preprocess_ms, "invoke": invoke_ms})

    def finish(self, invoked: Invoked) -> DetectionResult:
        """Decode what :meth:`invoke_tensor` gave (one thread at a time: the fault counters)."""
        t2 = time.perf_counter()
        found, faults = self.decode_counted(invoked.raw, invoked.height, invoked.width)
        timings = {**invoked.timings_ms, "postprocess": (time.perf_counter() - t2) * 1000}
        return DetectionResult(found, timings, self.accelerator, faults)

    def decode(self, raw: list[Floats], height: int, width: int) -> tuple[Detection, ...]:
        """The model's outputs (dequantized, in the order load checked) -> detections in
        pixels of a ``height`` x ``width`` frame, best first (:meth:`decode_counted`)."""
        return self.decode_counted(raw, height, width)[0]

    def decode_counted(
        self, raw: list[Floats], height: int, width: int
    ) -> tuple[tuple[Detection, ...], OutputFaults]:
        """:meth:`decode`, and what it dropped or clipped in this frame (also added to
        :attr:`faults`): NaN scores and degenerate boxes dropped, boxes clipped to the frame,
        those wholly outside it dropped; a bad output never raises."""
        if self._anchors is not None:
            boxes, scores, classes, faults = self._decode_anchors(raw[0], raw[1])
        else:
            boxes, scores, classes, faults = _decode_ssd(raw, self.spec.score_threshold)
        size = (self.input_spec.height, self.input_spec.width)
        pixels = frame_pixels(boxes, height, width, size, self.card.preprocess)
        pixels, inside, clipped = clip(pixels, height, width)
        faults += clipped
        self.faults += faults
        found = tuple(
            Detection(
                self._label(int(c)), float(s), (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
            )
            for b, s, c in zip(pixels[inside], scores[inside], classes[inside], strict=True)
        )
        return found[: self.spec.max_detections], faults

    def _decode_anchors(
        self, regressors: Floats, logits: Floats
    ) -> tuple[Floats, Floats, Any, OutputFaults]:
        assert self._anchors is not None
        boxes = decode_boxes(
            regressors.reshape(len(self._anchors), -1), self._anchors, self.spec.decoding
        )
        flat = logits.reshape(-1)
        scores = decode_scores(flat, self.spec.decoding)
        keep, faults = screen(
            boxes, np.where(np.isnan(flat), np.nan, scores), self.spec.score_threshold
        )
        candidates = np.flatnonzero(keep)
        kept = nms(
            boxes[candidates],
            scores[candidates],
            self.spec.iou_threshold,
            self.spec.max_detections,
            weighted=self.spec.nms == "weighted",
        )
        out_boxes = np.asarray([box for _, box in kept], dtype=np.float32).reshape(-1, 4)
        out_scores = np.asarray([scores[candidates[i]] for i, _ in kept], dtype=np.float32)
        return out_boxes, out_scores, np.zeros(len(kept), dtype=np.int64), faults

    def _label(self, class_id: int) -> str:
        index = class_id + self.spec.label_offset
        labels = self.card.labels
        return labels[index] if 0 <= index < len(labels) else str(class_id)


def _decode_ssd(raw: list[Floats], threshold: float) -> tuple[Floats, Floats, Any, OutputFaults]:
    """``TFLite_Detection_PostProcess``'s boxes (ymin, xmin, ymax, xmax), classes, scores and
    count -> (xmin, ymin, xmax, ymax) boxes, scores, class ids of the first ``count`` rows with
    a finite score >= ``threshold`` and a box with area (:func:`screen`), and what was dropped."""
    boxes, classes, scores, count = raw
    n = int(np.clip(np.nan_to_num(count.reshape(-1)[0]), 0, boxes.shape[1]))
    out_boxes = boxes.reshape(-1, 4)[:n][:, [1, 0, 3, 2]].astype(np.float32)
    out_scores = scores.reshape(-1)[:n].astype(np.float32)
    ids = np.nan_to_num(classes.reshape(-1)[:n], nan=-1).astype(np.int64)
    keep, faults = screen(out_boxes, out_scores, threshold)
    return out_boxes[keep], out_scores[keep], ids[keep], faults
