"""The result models again, as TypedDicts: the cloud's ingest validates into plain dicts.

The cloud stores every result it receives, so decoding results is its hottest path. Validated
into :mod:`shared.messages`' frozen models, a gateway batch of results cost about as much as
inserting its rows, and the rows were then copied out of the models field by field. Validated
into these TypedDicts instead, pydantic checks the same constraints and builds only dicts and
lists, which the rows reuse as they are (``top`` is already the JSON column's value).

Each class here has the name, the fields and the constraints of its model (it reuses the
model's annotated types); a field with a default in the model is :data:`NotRequired` here, and
:func:`shared.codec.decode_results` fills in the ones the cloud reads. Two tests keep the twins
honest: their JSON schema must equal the models' (``tests/shared/test_dicts.py``), and the
fuzzer feeds both the same hostile payloads (``tests/fuzz/test_decoders.py``).
"""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired

from pydantic import ConfigDict, Field, TypeAdapter, with_config
from typing_extensions import TypedDict

from edgecascade.shared.fields import (
    INT32_MAX,
    MAX_DETECTIONS,
    Coordinate,
    FrameId,
    Ident,
    Label,
    MessageId,
    Sha256,
    Side,
    Task,
    Version,
)

# The models' STRICT, less ``frozen`` (which applies to instances, not to validation).
_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)
_Seconds = Annotated[float, Field(ge=0)]


@with_config(_STRICT)
class ModelRef(TypedDict):
    name: Ident
    version: Version
    sha256: NotRequired[Sha256 | Literal[""]]


@with_config(_STRICT)
class Prediction(TypedDict):
    index: Annotated[int, Field(ge=0, le=INT32_MAX)]
    label: Label
    score: Annotated[float, Field(ge=0.0, le=1.0)]


@with_config(_STRICT)
class DetectedObject(TypedDict):
    label: Label
    score: Annotated[float, Field(ge=0.0, le=1.0)]
    box: tuple[Coordinate, Coordinate, Coordinate, Coordinate]
    zone: NotRequired[Ident | None]


@with_config(_STRICT)
class ResultMessage(TypedDict):
    task: NotRequired[Task]
    detections: NotRequired[Annotated[list[DetectedObject], Field(max_length=MAX_DETECTIONS)]]
    schema_version: NotRequired[Literal[1]]
    msg_id: NotRequired[MessageId]
    ts: NotRequired[_Seconds]
    frame_id: FrameId
    captured_at: _Seconds
    model: ModelRef
    top: Annotated[list[Prediction], Field(max_length=10)]
    latency_ms: NotRequired[dict[Ident, Annotated[float, Field(ge=0)]]]
    escalated: NotRequired[bool]
    ground_truth: NotRequired[Label | None]
    accelerator: NotRequired[Label]
    frame_size: NotRequired[tuple[Side, Side] | None]
    policy: NotRequired[Version | None]


@with_config(_STRICT)
class BatchedResult(TypedDict):
    device: Ident
    result: ResultMessage


@with_config(_STRICT)
class ResultBatchMessage(TypedDict):
    schema_version: NotRequired[Literal[1]]
    msg_id: NotRequired[MessageId]
    ts: NotRequired[_Seconds]
    results: Annotated[list[BatchedResult], Field(min_length=1, max_length=10_000)]


RESULT = TypeAdapter(ResultMessage)
RESULT_BATCH = TypeAdapter(ResultBatchMessage)
