"""One pydantic model per message kind; the payload half of the contract (topics are the other).

Every message has ``schema_version`` and a UUIDv7 ``msg_id`` (time-ordered, unique) so each hop can
de-duplicate: delivery is at-least-once on the wire and exactly-once in effect. JSON kinds travel as
UTF-8 JSON; escalations and model chunks carry bytes and travel in the binary frame codec
(:mod:`shared.framecodec`) with one of these models as the header.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints

from shared.ids import new_message_id

SCHEMA_VERSION = 1

MessageId = Annotated[
    str,
    StringConstraints(
        pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        max_length=36,
    ),
]
Label = Annotated[str, StringConstraints(min_length=1, max_length=128)]
ShortText = Annotated[str, StringConstraints(max_length=1024)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Ident = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")]


class Message(BaseModel):
    """Fields every message carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = Field(1, description="Payload schema version.")
    msg_id: MessageId = Field(default_factory=new_message_id, description="UUIDv7, unique.")
    ts: float = Field(default_factory=time.time, ge=0, description="Creation time, Unix seconds.")


class ModelRef(BaseModel):
    """Which model produced something."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Ident
    version: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    sha256: Sha256 | Literal[""] = ""


class Prediction(BaseModel):
    """One class and its probability."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int = Field(ge=0)
    label: Label
    score: float = Field(ge=0.0, le=1.0)


Predictions = Annotated[list[Prediction], Field(min_length=1, max_length=10)]


class StateMessage(Message):
    """Retained device or gateway availability; the LWT publishes ``offline``."""

    status: Literal["online", "offline"]
    session: int = Field(0, ge=0, description="Start time of this process (ms): a session epoch.")
    role: Literal["agent", "gateway", "cloud", "worker"] = "agent"
    model: ModelRef | None = None
    capabilities: Annotated[list[Ident], Field(max_length=32)] = []
    software: Annotated[str, StringConstraints(max_length=64)] = ""
    detail: ShortText = ""


class ResultMessage(Message):
    """One inference result from a device."""

    frame_id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    captured_at: float = Field(ge=0, description="When the frame was captured, Unix seconds.")
    model: ModelRef
    top: Predictions
    latency_ms: dict[Ident, Annotated[float, Field(ge=0)]] = {}
    escalated: bool = False
    ground_truth: Label | None = Field(None, description="Known label of a labelled test frame.")


class BatchedResult(BaseModel):
    """A device result inside a gateway batch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: Ident
    result: ResultMessage


class ResultBatchMessage(Message):
    """Results of several devices of one site, aggregated by the gateway."""

    results: Annotated[list[BatchedResult], Field(min_length=1, max_length=10_000)]


class EscalationHeader(Message):
    """Header of an escalated frame; the image bytes follow it in the frame codec."""

    result_id: MessageId = Field(description="msg_id of the edge result this frame belongs to.")
    frame_id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    captured_at: float = Field(ge=0)
    model: ModelRef
    top: Predictions
    reason: ShortText = Field("", description="Which policy rule escalated the frame.")
    content_type: Literal["image/jpeg", "image/png"] = "image/jpeg"
    width: int = Field(gt=0, le=16384)
    height: int = Field(gt=0, le=16384)
    roi: tuple[int, int, int, int] | None = Field(None, description="x, y, w, h of a crop.")
    ground_truth: Label | None = None


class Percentiles(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    p50: float = Field(ge=0)
    p95: float = Field(ge=0)
    p99: float = Field(ge=0)


class TelemetryMessage(Message):
    """Device health and pipeline figures, every few seconds."""

    cpu_percent: float = Field(ge=0)
    memory_percent: float = Field(ge=0, le=100)
    memory_rss_mb: float = Field(ge=0)
    temperature_c: float | None = None
    fps: float = Field(ge=0)
    frames: int = Field(0, ge=0, description="Frames processed since start.")
    latency_ms: dict[Ident, Percentiles] = {}
    queues: dict[Ident, Annotated[int, Field(ge=0)]] = {}
    counters: dict[Ident, Annotated[int, Field(ge=0)]] = Field(
        {}, description="Monotonic counters: drops, escalations, outbox sent/expired/dropped..."
    )
    model: ModelRef | None = None


class FieldStats(BaseModel):
    """One numeric telemetry field over a rollup window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: float
    mean: float
    max: float
    last: float


class TelemetryRollupMessage(Message):
    """A device's telemetry over one window, summarised by the site gateway.

    ``fields`` holds min/mean/max/last of every numeric field of the samples (``cpu_percent``,
    ``fps``, ``latency_ms.invoke.p50``, ``queues.outbox.result``, ``counters.sent.result``...);
    ``last`` is the newest sample, whole.
    """

    window_start: float = Field(ge=0)
    window_end: float = Field(ge=0)
    samples: int = Field(ge=1)
    fields: dict[Annotated[str, StringConstraints(max_length=200)], FieldStats] = Field(
        max_length=2000
    )
    last: TelemetryMessage


class VerdictMessage(Message):
    """The cloud's answer to an escalation, correlated by ``escalation_id``."""

    escalation_id: MessageId
    result_id: MessageId
    model: ModelRef
    top: Predictions
    agrees: bool = Field(description="Whether the cloud's top-1 equals the edge's top-1.")


class GoldenCase(BaseModel):
    """A smoke test shipped with a model: this image must give this top-1 (within tolerance)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image_png_b64: Annotated[str, StringConstraints(max_length=256 * 1024)]
    top1_index: int = Field(ge=0)
    top1_score: float = Field(ge=0, le=1)
    tolerance: float = Field(0.05, ge=0, le=1)


class ModelManifest(BaseModel):
    """What a device needs to fetch, verify and run a model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Ident
    version: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    sha256: Sha256
    size_bytes: int = Field(gt=0)
    chunk_size: int = Field(gt=0, le=1 << 20)
    labels: Annotated[list[Label], Field(max_length=100_000)]
    temperature: float = Field(1.0, gt=0)
    card: dict[str, JsonValue] = Field({}, description="The model card, as JSON.")
    golden: Annotated[list[GoldenCase], Field(max_length=32)] = Field(
        [], description="Smoke tests the device runs before it switches to the model."
    )
    signature: Annotated[str, StringConstraints(max_length=256)] = Field(
        "", description="ed25519 signature (hex) over the manifest without this field."
    )


class ModelOfferMessage(Message):
    """Cloud (via gateway) to device: install this model."""

    rollout_id: Ident
    manifest: ModelManifest


class ModelChunkRequestMessage(Message):
    """Device to gateway: send me these chunks (resume = ask for the missing ones)."""

    sha256: Sha256
    indexes: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1, max_length=4096)]


class ModelChunkHeader(Message):
    """Header of a model chunk; the chunk bytes follow it in the frame codec."""

    sha256: Sha256
    index: int = Field(ge=0)
    total: int = Field(gt=0)


class ModelAckMessage(Message):
    """Device to cloud: how applying a model went."""

    rollout_id: Ident
    version: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    sha256: Sha256
    status: Literal["downloading", "verified", "applied", "committed", "rolled_back", "failed"]
    detail: ShortText = ""


class CommandMessage(Message):
    """A request; never retained, answered on ``reply/<name>`` with the same correlation."""

    correlation: MessageId
    args: dict[Ident, JsonValue] = {}


class ReplyMessage(Message):
    """The answer to a command: ``{status, data, error, correlation}``."""

    correlation: MessageId
    status: Literal["ok", "error"]
    data: JsonValue = None
    error: ShortText | None = None


class DeadLetterMessage(Message):
    """A message that failed validation, kept with the reason instead of being dropped silently."""

    topic: Annotated[str, StringConstraints(max_length=1024)]
    reason: ShortText
    payload_size: int = Field(ge=0)
    payload_head: Annotated[str, StringConstraints(max_length=512)] = Field(
        "", description="The first bytes of the payload, hex."
    )
