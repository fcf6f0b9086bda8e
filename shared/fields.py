"""The field rules every message model shares, and the detection models the answers carry.

:mod:`shared.messages` builds the message kinds from these; they live here so that module stays
one model per kind.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SerializerFunctionWrapHandler,
    StringConstraints,
    model_serializer,
    model_validator,
)

from edgecascade.shared.topics import ID_PATTERN

SCHEMA_VERSION = 1
# Every model refuses NaN and infinities, and every stored text refuses NUL: the JSON parser
# reads ``NaN``, ``Infinity`` and ``"\u0000"``, but PostgreSQL refuses them (a JSON column cannot
# hold NaN, a text column cannot hold NUL), and a gateway batch carrying one such result would
# then be lost whole in the cloud. Integers are bounded by the columns they go to.
STRICT = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
NO_NUL = r"^[^\x00]*$"
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
MAX_FRAME_PIXELS = 2**25  # 33.5 million: 8K UHD (7680 x 4320) fits

MESSAGE_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
MessageId = Annotated[str, StringConstraints(pattern=MESSAGE_ID_PATTERN, max_length=36)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=NO_NUL)]
ShortText = Annotated[str, StringConstraints(max_length=1024, pattern=NO_NUL)]
Version = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NO_NUL)]
FrameId = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=NO_NUL)]
ConfigVersion = Annotated[int, Field(ge=1, le=INT64_MAX)]  # a remote config's version
# A device tag: a word or name:value (zone:north, pilot); cloud.fleet.tags combines them.
TAG_PATTERN = r"^[A-Za-z0-9_.-]{1,64}(:[A-Za-z0-9_.-]{1,64})?$"
Tag = Annotated[str, StringConstraints(pattern=TAG_PATTERN)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


def plain_json(value: JsonValue) -> JsonValue:
    """Free-form JSON (command arguments, reply data, a model card) under the same rules as the
    typed fields: no NaN or infinity, no NUL."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"{item} is not a finite number")
        if isinstance(item, str) and "\x00" in item:
            raise ValueError(f"text {item[:40]!r} contains NUL")
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


PlainJson = Annotated[JsonValue, AfterValidator(plain_json)]
Ident = Annotated[str, StringConstraints(pattern=ID_PATTERN)]


@dataclass(frozen=True)
class OmitWhen:
    """Field metadata (``Annotated[T, OmitWhen(test)]``): the field is left out of the serialised
    message when ``test(value)`` holds. A field added to a message kind stays out of the JSON at
    its default, so older messages keep their bytes and signed manifests their signatures.
    Applied by :class:`Omitting` (pydantic's own ``exclude_if`` needs 2.12, which the train
    extra's converter cannot have)."""

    test: Callable[[Any], bool]


@cache
def _omissions(model: type[BaseModel]) -> tuple[tuple[str, Callable[[Any], bool]], ...]:
    return tuple(
        (name, meta.test)
        for name, field in model.model_fields.items()
        for meta in field.metadata
        if isinstance(meta, OmitWhen)
    )


class Omitting(BaseModel):
    """A model whose :class:`OmitWhen` fields are left out of its serialised form."""

    # No return annotation on purpose: pydantic then keeps the model's own serialisation schema.
    @model_serializer(mode="wrap")
    def _omit(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        data = handler(self)
        for name, test in _omissions(type(self)):
            if name in data and test(getattr(self, name)):
                del data[name]
        return data


Task = Literal["classification", "detection"]
MAX_DETECTIONS = 100  # what one result, escalation or verdict carries (16 KiB results fit 100)
Coordinate = Annotated[float, Field(ge=0, le=16384)]
Side = Annotated[int, Field(gt=0, le=16384)]


class DetectedObject(BaseModel):
    """One detection: label, score and box ``(x0, y0, x1, y1)`` in pixels of the original frame
    (the model's letterbox or crop undone; ``x0 <= x1``, ``y0 <= y1``, inside the frame)."""

    model_config = STRICT

    label: Label
    score: float = Field(ge=0.0, le=1.0)
    box: tuple[Coordinate, Coordinate, Coordinate, Coordinate]
    zone: Ident | None = Field(
        None, description="The camera's include zone the box's anchor point lies in, if any."
    )

    @model_validator(mode="after")
    def _ordered(self) -> DetectedObject:
        x0, y0, x1, y1 = self.box
        if x1 < x0 or y1 < y0:
            raise ValueError(f"box {list(self.box)} is not (x0, y0, x1, y1) with x0<=x1, y0<=y1")
        return self


Detections = Annotated[list[DetectedObject], Field(max_length=MAX_DETECTIONS)]


class DetectionAgreement(BaseModel):
    """How the edge's boxes compare with the cloud's on one frame: greedy matching by IoU
    (same label, best score first); precision and recall of the edge against the cloud, 1.0
    when there is nothing to get wrong (no boxes on either side)."""

    model_config = STRICT

    iou_threshold: float = Field(gt=0, le=1)
    matched: int = Field(ge=0, le=MAX_DETECTIONS)
    edge_only: int = Field(ge=0, le=MAX_DETECTIONS, description="Edge boxes the cloud has not.")
    cloud_only: int = Field(ge=0, le=MAX_DETECTIONS, description="Cloud boxes the edge missed.")
    precision: float = Field(ge=0, le=1)
    recall: float = Field(ge=0, le=1)
    mean_iou: float = Field(0.0, ge=0, le=1, description="Over the matched pairs.")
