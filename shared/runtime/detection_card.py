"""The ``detection`` section of a model card: which post-processing family reads the outputs.

Two families (:mod:`~edgecascade.shared.runtime.detect` decodes them):

- ``anchors``: raw outputs, one tensor of box regressors ``[1, N, coords]`` and one of scores
  ``[1, N, 1]``, decoded against SSD anchors the card describes with the options of MediaPipe's
  ``SsdAnchorsCalculator`` and the box options of its ``TensorsToDetectionsCalculator`` (field
  names kept, so a MediaPipe graph config can be copied in), then NMS. MediaPipe's BlazeFace face
  detectors are of this family.
- ``ssd``: the four outputs of the ``TFLite_Detection_PostProcess`` operator (boxes
  ``[1, N, 4]`` as ymin, xmin, ymax, xmax in 0..1, classes ``[1, N]``, scores ``[1, N]``, count
  ``[1]``), which the TensorFlow Object Detection API, Model Maker and EfficientDet-Lite exports
  produce: the model has decoded and suppressed already.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SsdAnchors(BaseModel):
    """MediaPipe's ``SsdAnchorsCalculatorOptions``, with its defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_size_width: int = Field(gt=0, description="Model input width the anchors tile.")
    input_size_height: int = Field(gt=0, description="Model input height the anchors tile.")
    num_layers: int = Field(gt=0, description="Feature map layers that carry anchors.")
    strides: list[int] = Field(description="Stride of each layer (num_layers values).")
    min_scale: float = Field(0.1484375, gt=0, description="Scale of the lowest layer.")
    max_scale: float = Field(0.75, gt=0, description="Scale of the highest layer.")
    anchor_offset_x: float = Field(0.5, description="Anchor centre within its cell, x.")
    anchor_offset_y: float = Field(0.5, description="Anchor centre within its cell, y.")
    aspect_ratios: list[float] = Field(default_factory=lambda: [1.0], description="Per layer.")
    feature_map_width: list[int] = Field(
        default_factory=list, description="Per layer; empty: input width / stride."
    )
    feature_map_height: list[int] = Field(
        default_factory=list, description="Per layer; empty: input height / stride."
    )
    reduce_boxes_in_lowest_layer: bool = Field(
        False, description="Lowest layer: ratios 1, 2, 0.5 at scales 0.1, s, s."
    )
    interpolated_scale_aspect_ratio: float = Field(
        1.0, description="Adds an anchor of this ratio between two scales; 0: none."
    )
    fixed_anchor_size: bool = Field(
        False, description="Anchors of width and height 1 (the regressors give the size)."
    )

    @model_validator(mode="after")
    def _layers(self) -> SsdAnchors:
        if len(self.strides) != self.num_layers:
            raise ValueError(
                f"anchors.strides {self.strides} has {len(self.strides)} values, "
                f"num_layers is {self.num_layers}"
            )
        for name in ("feature_map_width", "feature_map_height"):
            values = getattr(self, name)
            if values and len(values) != self.num_layers:
                raise ValueError(f"anchors.{name} {values} needs num_layers values")
        return self


class BoxDecoding(BaseModel):
    """MediaPipe's ``TensorsToDetectionsCalculatorOptions`` for the regressors, with its
    defaults: where the box sits in each row and how it is scaled against its anchor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_coords: int = Field(4, ge=4, description="Values per row of the regressor tensor.")
    box_coord_offset: int = Field(0, ge=0, description="Index of the box in a row.")
    keypoint_coord_offset: int = Field(4, ge=0, description="Index of the first keypoint.")
    num_keypoints: int = Field(0, ge=0, description="Keypoints after the box (x, y each).")
    num_values_per_keypoint: int = Field(2, ge=2, description="Values per keypoint.")
    reverse_output_order: bool = Field(
        False, description="Rows are x, y, w, h (true) instead of y, x, h, w."
    )
    x_scale: float = Field(0.0, ge=0, description="Divides x regressors; 0: not set.")
    y_scale: float = Field(0.0, ge=0, description="Divides y regressors; 0: not set.")
    w_scale: float = Field(0.0, ge=0, description="Divides w regressors; 0: not set.")
    h_scale: float = Field(0.0, ge=0, description="Divides h regressors; 0: not set.")
    apply_exponential_on_box_size: bool = Field(False, description="w, h = exp(r / scale).")
    sigmoid_score: bool = Field(True, description="Scores are logits: apply a sigmoid.")
    score_clipping_thresh: float = Field(
        100.0, gt=0, description="Logits clipped to +-this before the sigmoid."
    )

    @model_validator(mode="after")
    def _row(self) -> BoxDecoding:
        need = self.keypoint_coord_offset + self.num_keypoints * self.num_values_per_keypoint
        if self.box_coord_offset + 4 > self.num_coords or need > self.num_coords:
            raise ValueError(
                f"decoding: box at {self.box_coord_offset} and {self.num_keypoints} keypoints "
                f"at {self.keypoint_coord_offset} do not fit num_coords {self.num_coords}"
            )
        return self


class DetectionSpec(BaseModel):
    """How a detection model's outputs become detections."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    family: Literal["anchors", "ssd"] = Field(
        description="anchors: raw regressors + scores decoded here; ssd: the four outputs of "
        "TFLite_Detection_PostProcess."
    )
    anchors: SsdAnchors | None = Field(None, description="The anchors (family anchors).")
    decoding: BoxDecoding = Field(default_factory=BoxDecoding, description="Family anchors.")
    score_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="Detections below this score are dropped."
    )
    max_detections: int = Field(100, gt=0, description="At most this many, best first.")
    nms: Literal["weighted", "hard"] = Field(
        "weighted",
        description="Family anchors: weighted averages the overlapping boxes (MediaPipe's "
        "faces), hard keeps the best.",
    )
    iou_threshold: float = Field(
        0.3, ge=0.0, le=1.0, description="Family anchors: boxes overlapping more are merged."
    )
    label_offset: int = Field(
        0, description="Family ssd: labels index = class id + this (1 if labels has background)."
    )

    @model_validator(mode="after")
    def _family(self) -> DetectionSpec:
        if self.family == "anchors" and self.anchors is None:
            raise ValueError("detection.family 'anchors' needs detection.anchors")
        if self.family == "ssd" and self.anchors is not None:
            raise ValueError("detection.family 'ssd' decodes in the model: drop detection.anchors")
        return self
