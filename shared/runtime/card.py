"""Model cards: the metadata a ``.tflite`` file needs but cannot carry itself.

A card is a JSON file next to the model (``foo.tflite`` -> ``foo.json``). It holds the labels, the
preprocessing the model was trained with and the provenance of the file. A bare ``.tflite``
without a card still runs: the runtime reads what the model says about itself
(:mod:`~edgecascade.shared.runtime.describe`: TFLite metadata, else input quantization), and
:func:`ModelCard.for_bare_model` supplies the defaults for what it does not say.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from edgecascade.shared.errors import ModelError
from edgecascade.shared.runtime.detection_card import DetectionSpec

ResizeMode = Literal["stretch", "center_crop", "letterbox"]
ColorOrder = Literal["rgb", "bgr", "gray"]
OutputKind = Literal["auto", "logits", "probabilities"]


class Preprocess(BaseModel):
    """How a decoded image becomes the model's float input, before quantization."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    resize: ResizeMode = Field("stretch", description="How the frame is fitted to the input size.")
    crop_ratio: float = Field(
        0.875, gt=0.0, le=1.0, description="Fraction of the short side kept by center_crop."
    )
    color: ColorOrder = Field("rgb", description="Channel order the model expects.")
    mean: float | list[float] = Field(
        127.5,
        description="Subtracted from each 0..255 pixel value: one value, or one per channel "
        "(3 for RGB, in the model's channel order).",
    )
    std: float | list[float] = Field(
        127.5,
        description="Divides each pixel value after the mean: one value > 0, or one per channel.",
    )

    @field_validator("mean", "std")
    @classmethod
    def _per_channel(cls, value: float | list[float], info: ValidationInfo) -> float | list[float]:
        values = value if isinstance(value, list) else [value]
        if len(values) not in (1, 3):
            raise ValueError(
                f"{info.field_name} {value} has {len(values)} values; give one value or one per "
                "channel (3 for RGB)"
            )
        rule = "finite and > 0" if info.field_name == "std" else "finite"
        for v in values:
            if not math.isfinite(v) or (info.field_name == "std" and v <= 0):
                where = f"{value} has {v}" if isinstance(value, list) else f"{value}"
                raise ValueError(f"{info.field_name} {where}: it must be {rule}")
        return value

    def per_channel(self, channels: int) -> tuple[list[float], list[float]]:
        """``(mean, std)`` with one value per input channel; ValueError naming the mismatch."""
        out = []
        for name, value in (("mean", self.mean), ("std", self.std)):
            values = value if isinstance(value, list) else [value]
            if len(values) == 1:
                values = values * channels
            if len(values) != channels:
                raise ValueError(
                    f"preprocess.{name} {value} has {len(values)} values but the model's input "
                    f"has {channels} channel(s)"
                )
            out.append(values)
        return out[0], out[1]


class ModelMetrics(BaseModel):
    """Figures measured by the command in ``build_command``; empty for a bare model."""

    model_config = ConfigDict(extra="allow", frozen=True)

    accuracy: float | None = Field(None, description="Top-1 accuracy on ``eval_dataset``.")
    eval_dataset: str | None = Field(None, description="What the accuracy was measured on.")
    latency_ms_p50: float | None = Field(None, description="Median single-image invoke time.")


class TrainableSource(BaseModel):
    """What a model can be fine-tuned from: a registered architecture and its torch weights."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    architecture: str = Field(description="Id in modelzoo.architectures.ARCHITECTURES.")
    weights: str = Field(description="The state_dict file, relative to the card's folder.")
    weights_sha256: str = Field(description="sha256 of the weights file.")


class LineageMetrics(BaseModel):
    """Top-1 accuracy of one model on the trainer's two evaluation sets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    holdout_accuracy: float | None = Field(
        description="On the dataset's held-out slice (None when the slice is empty)."
    )
    original_accuracy: float = Field(description="On the original evaluation set.")


class Lineage(BaseModel):
    """Where a fine-tuned model comes from: parent, data, figures and the command."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    parent: str = Field(description="The parent model as name@version.")
    parent_sha256: str = Field(description="sha256 of the parent's .tflite.")
    dataset_snapshot_id: str = Field(description="snapshot_id of the verdict dataset.")
    dataset_size: int = Field(ge=0, description="Samples in the dataset (train + holdout).")
    train_samples: int = Field(ge=0, description="Dataset samples trained on.")
    holdout_samples: int = Field(ge=0, description="Dataset samples evaluated on.")
    original_eval_dataset: str = Field(description="What original_accuracy was measured on.")
    before: LineageMetrics = Field(description="The parent's figures.")
    after: LineageMetrics = Field(description="This model's figures.")
    command: str = Field(description="The training command line.")


class ModelCard(BaseModel):
    """Everything about a model file that the runtime and a manifest need."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Model family, e.g. 'fashion-edge'.")
    version: str = Field("0", description="Version string shown in state and manifests.")
    task: Literal["classification", "detection"] = Field(
        "classification",
        description="What the model does: classification (ModelRuntime) or detection (Detector).",
    )
    labels: list[str] = Field(
        default_factory=list, description="Class names, by output index (detection: class id)."
    )
    output: OutputKind = Field(
        "auto", description="Whether outputs are logits or probabilities; auto checks the sums."
    )
    temperature: float = Field(1.0, gt=0.0, description="Softmax temperature (calibration).")
    preprocess: Preprocess = Field(default_factory=Preprocess)
    source: str = Field("", description="Where the weights and data come from.")
    license: str = Field("", description="Licence of the weights and training data.")
    build_command: str = Field("", description="Command that produced the file.")
    sha256: str = Field("", description="sha256 of the .tflite file the card describes.")
    size_bytes: int = Field(0, ge=0, description="Size of the .tflite file.")
    metrics: ModelMetrics = Field(default_factory=ModelMetrics)
    trainable: TrainableSource | None = Field(
        None, description="The source it can be fine-tuned from; None: not trainable."
    )
    lineage: Lineage | None = Field(None, description="Parent and data of a fine-tuned model.")
    detection: DetectionSpec | None = Field(
        None, description="How a detection model's outputs are decoded (task detection)."
    )

    @model_validator(mode="after")
    def _task(self) -> ModelCard:
        if self.task == "detection" and self.detection is None:
            raise ValueError("task 'detection' needs a detection section (family, anchors...)")
        if self.task == "classification" and self.detection is not None:
            raise ValueError("a detection section needs task 'detection'")
        if self.task == "detection" and (self.output != "auto" or self.temperature != 1.0):
            # a detector's scores are decoded by its family; a setting it ignores is refused
            raise ValueError(
                f"output ({self.output!r}) and temperature ({self.temperature}) calibrate a "
                "classifier's scores; a detection card leaves them at their defaults ('auto', 1.0)"
            )
        return self

    @classmethod
    def for_bare_model(cls, model_path: Path) -> ModelCard:
        """Defaults for a ``.tflite`` without a card: inputs scaled to [-1, 1], RGB, stretch."""
        return cls(name=model_path.stem)

    @classmethod
    def load(cls, path: Path) -> ModelCard:
        """Read a card, naming the file in every error."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ModelError(f"{path}: cannot read model card: {exc.strerror}") from exc
        except json.JSONDecodeError as exc:
            raise ModelError(f"{path}: model card is not valid JSON: {exc}") from exc
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ModelError(f"{path}: invalid model card: {exc}") from exc

    def save(self, path: Path) -> None:
        """Write the card; the optional sections are left out when empty, so cards written
        before they existed stay byte-identical."""
        optional = ("trainable", "lineage", "detection")
        empty = {key for key in optional if getattr(self, key) is None}
        path.write_text(self.model_dump_json(indent=2, exclude=empty) + "\n", encoding="utf-8")


def card_path_for(model_path: Path) -> Path:
    """The card that belongs to ``model_path`` (same stem, ``.json``)."""
    return model_path.with_suffix(".json")


def load_card_for(model_path: Path) -> ModelCard:
    """The model's card when present, otherwise defaults for a bare model."""
    card_path = card_path_for(model_path)
    if card_path.exists():
        return ModelCard.load(card_path)
    return ModelCard.for_bare_model(model_path)
